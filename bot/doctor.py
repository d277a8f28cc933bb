"""`shepherd doctor`: check the configuration piece by piece and say exactly what to fix.

Each check returns ``Check`` lines (OK, WARN or FAIL) with the fix for anything not OK. Checks
never raise: a check that cannot run is itself a FAIL with the reason. Network checks use short
timeouts so a dead endpoint costs seconds, not minutes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from bot import ids
from bot.settings import Settings

if TYPE_CHECKING:
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    from storage.database import Database

logger = logging.getLogger("shepherd.doctor")

TIMEOUT_SECONDS = 5.0


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    message: str
    fix: str | None = None


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order a person would fix things."""
    checks: list[Check] = []
    for check in CHECKS:
        try:
            checks.extend(check(settings))
        except Exception as error:  # a check must report, never crash the doctor
            logger.debug("check %s crashed", check.__name__, exc_info=True)
            checks.append(
                Check(check.__name__.removeprefix("check_"), Level.FAIL, f"the check itself failed: {error}")
            )
    return checks


# ---------------------------------------------------------------- pipeline and policies


def check_pipeline(settings: Settings) -> list[Check]:
    """The pipeline loads as `shepherd serve` loads it, and the policy folder exists: without
    them nothing else matters."""
    from bot.blocks.operations import load_checked_pipeline
    from gates.errors import PipelineError

    checks: list[Check] = []
    try:
        pipeline = load_checked_pipeline(settings.pipeline)
    except PipelineError as error:
        shown = "; ".join(str(problem) for problem in error.problems[:3])
        more = f" (and {len(error.problems) - 3} more)" if len(error.problems) > 3 else ""
        checks.append(
            Check(
                "pipeline",
                Level.FAIL,
                f"The pipeline cannot be used: {shown}{more}.",
                "Run `shepherd pipeline validate` for every problem with its line, and fix the file.",
            )
        )
    else:
        checks.append(
            Check(
                "pipeline",
                Level.OK,
                f"{pipeline.source}: {len(pipeline.model.gates)} gates, version {pipeline.version}.",
            )
        )
    folder = settings.policies_dir
    if folder is not None and not folder.is_dir():
        checks.append(
            Check(
                "policies",
                Level.FAIL,
                f"SHEPHERD_POLICIES={folder} is not a folder: the policy pack cannot be ingested.",
                "Point SHEPHERD_POLICIES at the folder of policy documents, or unset it for the bundled pack.",
            )
        )
    return checks


# ---------------------------------------------------------------- Slack


def check_slack_tokens(settings: Settings) -> list[Check]:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    results: list[Check] = []
    base_url = _slack_base_url(settings)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    wrong = settings.wrong_slack_token
    if token and wrong is not None and wrong[0].startswith("SLACK_BOT_TOKEN"):
        # Slack may well take it (a user token works, as that person): `serve` refuses it.
        results.append(Check("slack bot token", Level.FAIL, *wrong))
    elif token:
        if not token.startswith(("xoxb-", "xoxe.xoxb-")):
            results.append(
                Check(
                    "slack bot token",
                    Level.WARN,
                    "SLACK_BOT_TOKEN does not start with xoxb-, so it is probably not a bot token.",
                    "Use the Bot User OAuth Token from api.slack.com/apps > your app > OAuth & Permissions.",
                )
            )
        client = WebClient(token=token, base_url=base_url, timeout=int(TIMEOUT_SECONDS))
        try:
            answer = client.auth_test()
            who = f"bot {answer.get('user')} ({answer.get('user_id')}) in workspace {answer.get('team')}"
            missing = _missing_scopes(answer.headers)
            if missing:
                results.append(
                    Check(
                        "slack bot token",
                        Level.FAIL,
                        f"SLACK_BOT_TOKEN works ({who}), but {_lacks(missing)}.",
                        f"{MANIFEST_AGAIN} and reinstall it in the workspace; if Slack shows a new Bot "
                        "User OAuth Token, put it in SLACK_BOT_TOKEN.",
                    )
                )
            else:
                results.append(Check("slack bot token", Level.OK, f"SLACK_BOT_TOKEN works: {who}."))
        except SlackApiError as error:
            code = str(error.response.get("error", "unknown_error"))
            results.append(
                Check(
                    "slack bot token",
                    Level.FAIL,
                    f"Slack refused SLACK_BOT_TOKEN ({code}).",
                    _token_fix(code),
                )
            )
        except Exception as error:  # connection refused, DNS, timeout
            results.append(
                Check(
                    "slack bot token",
                    Level.FAIL,
                    f"Cannot reach the Slack API at {base_url}: {_first_line(error)}.",
                    "Check the network, or SLACK_API_URL if you point Shepherd at another Slack API "
                    "(unset it for the real Slack).",
                )
            )
    elif settings.oauth_enabled:
        results.append(
            Check(
                "slack bot token",
                Level.OK,
                "OAuth is configured (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET): tokens come from installations.",
            )
        )
    else:
        results.append(
            Check(
                "slack bot token",
                Level.WARN,
                "No SLACK_BOT_TOKEN (nor OAuth credentials): the bot will not connect to Slack.",
                "Create the app from slack-manifest.yaml, install it, and put its Bot User OAuth Token "
                "in SLACK_BOT_TOKEN.",
            )
        )

    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if app_token is not None and not app_token.startswith("xapp-"):
        results.append(
            Check(
                "slack app token",
                Level.FAIL,
                "SLACK_APP_TOKEN does not start with xapp-, so Socket Mode cannot connect with it.",
                "Create an app-level token with the connections:write scope (api.slack.com/apps > your app "
                "> Basic Information > App-Level Tokens) and put it in SLACK_APP_TOKEN.",
            )
        )
    elif app_token is not None:
        results.append(_app_token_check(app_token, base_url))
    return results


def _app_token_check(app_token: str, base_url: str) -> Check:
    """Whether Slack opens Socket Mode connections for SLACK_APP_TOKEN, as `serve` asks it to
    (``apps.connections.open``: it hands out an address, nothing connects)."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from bot.app import app_token_refused

    client = WebClient(base_url=base_url, timeout=int(TIMEOUT_SECONDS))
    try:
        client.apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        return Check("slack app token", Level.FAIL, *app_token_refused(error))
    except Exception as error:  # connection refused, DNS, timeout: the bot token check says more
        return Check(
            "slack app token",
            Level.WARN,
            f"Cannot reach Slack to check SLACK_APP_TOKEN: {_first_line(error)}.",
            "Check the network (or SLACK_API_URL), then run the doctor again.",
        )
    return Check("slack app token", Level.OK, "SLACK_APP_TOKEN opens Socket Mode connections.")


MANIFEST_AGAIN = (
    "Apply slack-manifest.yaml (`shepherd manifest` prints it) to the app again at api.slack.com/apps "
    "> your app > App Manifest"
)


def _missing_scopes(headers: Mapping[str, object]) -> list[str]:
    """The scopes Shepherd uses (``BOT_SCOPES``) that a token lacks, as Slack lists the token's
    scopes in the ``x-oauth-scopes`` header of its answers; none when Slack does not say."""
    from bot.app import BOT_SCOPES

    granted = next((str(value) for name, value in headers.items() if name.lower() == "x-oauth-scopes"), None)
    if granted is None:
        return []
    held = {scope.strip() for scope in granted.split(",")}
    return [scope for scope in BOT_SCOPES if scope not in held]


def _lacks(missing: list[str]) -> str:
    return (
        f"the app lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)}: what needs "
        f"{'them' if len(missing) > 1 else 'it'} fails in Slack"
    )


def _slack_base_url(settings: Settings) -> str:
    base_url = settings.slack_api_url or "https://slack.com/api/"
    return base_url if base_url.endswith("/") else base_url + "/"


# auth.test's answers for a token Slack will not take any more.
REFUSED_TOKEN = ("invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired")


def _token_fix(code: str) -> str:
    if code in REFUSED_TOKEN:
        return (
            "Copy the Bot User OAuth Token (xoxb-...) from api.slack.com/apps > your app > OAuth & "
            "Permissions into SLACK_BOT_TOKEN; reinstall the app if the token was revoked."
        )
    return f"See https://api.slack.com/methods/auth.test#errors for {code}."


def check_signing_secret(settings: Settings) -> list[Check]:
    if settings.slack_signing_secret is not None and settings.slack_signing_secret.get_secret_value():
        return [Check("slack signing secret", Level.OK, "SLACK_SIGNING_SECRET is set.")]
    if settings.slack_app_token is not None:
        return [
            Check("slack signing secret", Level.OK, "Not needed in Socket Mode (SLACK_APP_TOKEN is set).")
        ]
    level = Level.FAIL if (settings.slack_bot_token or settings.oauth_enabled) else Level.WARN
    return [
        Check(
            "slack signing secret",
            level,
            "SLACK_SIGNING_SECRET is not set: Shepherd cannot verify that requests come from Slack.",
            "Copy it from api.slack.com/apps > your app > Basic Information > App Credentials > "
            "Signing Secret into SLACK_SIGNING_SECRET.",
        )
    ]


def check_installation(settings: Settings) -> list[Check]:
    """With OAuth: whether someone has installed Shepherd, since notifications wait until then,
    and whether Slack still takes the installation's bot token."""
    if not settings.oauth_enabled or settings.slack_bot_token is not None:
        return []
    from bot.installations import InstalledBotToken, installation_store
    from storage.database import Database

    database = Database(settings.resolved_database_url)
    try:
        try:
            store = installation_store(settings, database)
            found = InstalledBotToken(store, settings.slack_team_id).installation()
            workspaces = _installed_workspaces(store)
        except Exception as error:  # no tables yet, database down: the database check says more
            return [
                Check("slack installation", Level.WARN, f"Cannot read installations: {_first_line(error)}.")
            ]
    finally:
        database.dispose()
    where = f"workspace {settings.slack_team_id}" if settings.slack_team_id else "any workspace"
    if found is None:
        return [
            Check(
                "slack installation",
                Level.WARN,
                f"Nobody has installed Shepherd in {where} yet: notifications wait in the outbox.",
                "Open /slack/install on this Shepherd (HTTP mode) and approve the install in Slack.",
            )
        ]
    workspace = f"workspace {found.team_name or found.team_id} ({found.team_id})"
    token = _installed_token_check(settings, found.bot_token, workspace)
    if token is not None and token.level is Level.FAIL:
        return [token]
    checks = [token] if token is not None else []
    goes_to = f"Notifications go to {workspace}, installed by {found.user_id}"
    if len(workspaces) > 1 and not settings.slack_team_id:
        return [
            *checks,
            Check(
                "slack installation",
                Level.WARN,
                f"Shepherd is installed in {len(workspaces)} workspaces ({', '.join(workspaces)}) and "
                f"SLACK_TEAM_ID is not set. {goes_to}, the first to install; were it uninstalled, "
                "the next one would take the registry's cards and approvers' DMs.",
                "Put the ID of the workspace the registry channel is in (T0123...) in SLACK_TEAM_ID.",
            ),
        ]
    return checks or [Check("slack installation", Level.OK, f"{goes_to}.")]


def _installed_token_check(settings: Settings, token: str | None, workspace: str) -> Check | None:
    """Whether Slack still takes the installation's bot token (auth.test): it may have been
    revoked while Shepherd was down, when no tokens_revoked event could reach it. None when it
    does, with every scope Shepherd uses; a FAIL when Slack refuses it or it lacks scopes; a
    WARN when Slack cannot be asked."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(token=token, base_url=_slack_base_url(settings), timeout=int(TIMEOUT_SECONDS))
    try:
        missing = _missing_scopes(client.auth_test().headers)
    except SlackApiError as error:
        code = str(error.response.get("error", "unknown_error"))
        if code in REFUSED_TOKEN:
            return Check(
                "slack installation",
                Level.FAIL,
                f"Slack refuses the bot token of {workspace} ({code}): notifications wait in the outbox.",
                "Reinstall at /slack/install: a workspace admin opens it on this Shepherd and approves "
                "the install in Slack.",
            )
        return Check(
            "slack installation",
            Level.WARN,
            f"Slack did not confirm the bot token of {workspace} ({code}).",
            f"See https://api.slack.com/methods/auth.test#errors for {code}, then run the doctor again.",
        )
    except Exception as error:  # connection refused, DNS, timeout: an outage, not the token
        return Check(
            "slack installation",
            Level.WARN,
            f"Cannot reach Slack to check the bot token of {workspace}: {_first_line(error)}.",
            "Check the network (or SLACK_API_URL), then run the doctor again.",
        )
    if missing:
        # Installed before Shepherd asked for these (an older version): only a reinstall grants them.
        return Check(
            "slack installation",
            Level.FAIL,
            f"The installation in {workspace} works, but {_lacks(missing)}.",
            "Reinstall at /slack/install: a workspace admin opens it on this Shepherd and approves "
            "the install in Slack (it asks for every scope Shepherd uses).",
        )
    return None


def _installed_workspaces(store: SQLAlchemyInstallationStore) -> list[str]:
    """The workspaces (or Enterprise Grid orgs, for org-wide installs) Shepherd is installed in:
    those with a bot token (a revoked one leaves its rows, without it: ``Revocations``)."""
    from sqlalchemy import select

    table = store.installations
    query = (
        select(table.c.team_id, table.c.enterprise_id)
        .where(table.c.client_id == store.client_id, table.c.bot_token.is_not(None))
        .distinct()
    )
    with store.engine.connect() as connection:
        return sorted(str(team or org) for team, org in connection.execute(query))


def check_registry_channel(settings: Settings) -> list[Check]:
    """Whether Shepherd can post initiative cards in SHEPHERD_REGISTRY_CHANNEL. Slack refuses
    every card there otherwise (not_in_channel, is_archived, channel_not_found): the owners are
    told by DM, but their initiatives have no card nor thread until this is fixed."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    token = _bot_token(settings)
    if token is None:
        return []  # nothing to ask Slack with: the token and installation checks say why
    channel = (settings.registry_channel or "").strip()
    if not channel:
        return [
            Check(
                "registry channel",
                Level.WARN,
                "SHEPHERD_REGISTRY_CHANNEL is not set: each initiative's card and its reviews' thread "
                "go to its owner's DM, where nobody else sees them.",
                "Create a channel for the registry, invite Shepherd (`/invite @Shepherd`), and put its ID "
                "(C0123..., at the bottom of the channel's details) in SHEPHERD_REGISTRY_CHANNEL.",
            )
        ]
    client = WebClient(token=token, base_url=_slack_base_url(settings), timeout=int(TIMEOUT_SECONDS))
    try:
        info = client.conversations_info(channel=channel)["channel"]
    except SlackApiError as error:
        code = str(error.response.get("error", "unknown_error"))
        return [_registry_channel_refused(channel, code, error.response.get("needed"))]
    except Exception as error:  # connection refused, DNS, timeout: the token check says more
        return [
            Check(
                "registry channel",
                Level.WARN,
                f"Cannot reach Slack to check SHEPHERD_REGISTRY_CHANNEL: {_first_line(error)}.",
                "Fix the slack bot token check first, then run the doctor again.",
            )
        ]
    name = f"#{info.get('name') or channel} ({info.get('id') or channel})"
    if info.get("is_archived"):
        return [
            Check(
                "registry channel",
                Level.FAIL,
                f"The registry channel {name} is archived: Slack refuses every initiative card there.",
                "Unarchive the channel, or set SHEPHERD_REGISTRY_CHANNEL to the ID of a channel in use "
                "(and invite Shepherd there).",
            )
        ]
    if not info.get("is_member"):
        return [
            Check(
                "registry channel",
                Level.FAIL,
                f"Shepherd is not a member of the registry channel {name}: Slack refuses every "
                "initiative card there (not_in_channel).",
                f"Invite Shepherd: type `/invite @Shepherd` in {name}.",
            )
        ]
    return [Check("registry channel", Level.OK, f"Cards go to {name}: Shepherd is a member.")]


def _registry_channel_refused(channel: str, code: str, needed: object) -> Check:
    """What Slack's refusal of conversations.info for the registry channel means, and the fix
    (``needed``: the scope Slack names with ``missing_scope``)."""
    if code == "channel_not_found":
        if not ids.CHANNEL_ID_PATTERN.match(channel):
            fix = (
                "Put the channel's ID in SHEPHERD_REGISTRY_CHANNEL (C0123..., at the bottom of the "
                "channel's details), not its name."
            )
        else:
            fix = (
                "Check the ID (the channel's details show it at the bottom). Slack hides a private "
                "channel from apps outside it: if it is private, invite Shepherd (`/invite @Shepherd`)."
            )
        return Check(
            "registry channel",
            Level.FAIL,
            f"Slack cannot find SHEPHERD_REGISTRY_CHANNEL={channel!r}: it refuses every initiative card "
            "there (channel_not_found).",
            fix,
        )
    if code == "missing_scope":
        return Check(
            "registry channel",
            Level.WARN,
            f"Cannot check SHEPHERD_REGISTRY_CHANNEL={channel!r}: the app lacks the "
            f"{needed or 'channels:read'} scope "
            "that conversations.info needs.",
            "Apply slack-manifest.yaml to the app again (it asks for channels:read, and groups:read "
            "for a private channel) and reinstall it; until then, make sure Shepherd is a member "
            "of the channel (`/invite @Shepherd`).",
        )
    return Check(
        "registry channel",
        Level.WARN,
        f"Cannot check SHEPHERD_REGISTRY_CHANNEL={channel!r}: Slack answered {code}.",
        f"Fix the slack bot token check first if it fails; see "
        f"https://api.slack.com/methods/conversations.info#errors for {code}.",
    )


def _bot_token(settings: Settings) -> str | None:
    """The bot token Shepherd posts with: SLACK_BOT_TOKEN, or with OAuth the installation's."""
    if settings.slack_bot_token is not None:
        return settings.slack_bot_token.get_secret_value() or None
    if not settings.oauth_enabled:
        return None
    from bot.installations import InstalledBotToken, installation_store
    from storage.database import Database

    database = Database(settings.resolved_database_url)
    try:
        found = InstalledBotToken(
            installation_store(settings, database), settings.slack_team_id
        ).installation()
    except Exception:  # no tables yet, database down: the database and installation checks say so
        return None
    finally:
        database.dispose()
    return found.bot_token if found is not None else None


# ---------------------------------------------------------------- database


def check_database(settings: Settings) -> list[Check]:
    from storage.database import Database, missing_sqlite_file
    from storage.errors import StorageError

    url = settings.resolved_database_url
    missing = missing_sqlite_file(url) if settings.database_url else None
    if missing is not None:
        # Opening it would create an empty file, and a mistyped path would then look like a
        # fresh install.
        return [
            Check(
                "database",
                Level.WARN,
                f"There is no database at {missing} (SHEPHERD_DATABASE_URL) yet.",
                "If Shepherd has run before, the path is mistyped; otherwise `shepherd serve` or "
                "`shepherd db upgrade` creates it there.",
            )
        ]
    try:
        database = Database(url)
    except Exception as error:
        return [
            Check(
                "database",
                Level.FAIL,
                f"SHEPHERD_DATABASE_URL is not usable: {_first_line(error)}.",
                "Use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB.",
            )
        ]
    try:
        where = database.describe()
        try:
            current = database.current_revision()
        except StorageError as error:
            return [
                Check(
                    "database",
                    Level.FAIL,
                    f"Cannot reach the database: {_first_line(error)}",
                    "Check that the server is running and that SHEPHERD_DATABASE_URL has the right host, "
                    "port, user and password.",
                )
            ]
        head = database.head()
        if current == head:
            reachable = Check("database", Level.OK, f"{where} is reachable, schema at {head} (current).")
            return [reachable, *_given_up(database), *_upkeep(database)]
        if current is None and database.is_sqlite:
            return [
                Check(
                    "database",
                    Level.OK,
                    f"{where} has no tables yet; Shepherd creates them at start (embedded SQLite).",
                )
            ]
        try:
            database.check()
        except StorageError as error:
            if database.is_sqlite and "upgrade" in str(error):
                return [
                    Check(
                        "database",
                        Level.WARN,
                        f"{where} is at {current}, this Shepherd needs {head}; it migrates itself at start.",
                    )
                ]
            return [
                Check(
                    "database",
                    Level.FAIL,
                    _first_line(error),
                    "Run `shepherd db upgrade`."
                    if "upgrade" in str(error)
                    else "Run the Shepherd version that migrated this database, or restore a backup.",
                )
            ]
        return [
            Check("database", Level.OK, f"{where} is reachable, schema at {current}."),
            *_upkeep(database),
        ]
    finally:
        database.dispose()


def _given_up(database: Database) -> list[Check]:
    """A WARN for notifications and requests the workers gave up on (``dead``): Slack refused
    them for good, or was unavailable for a day. Nothing else would show them."""
    from storage.inbox import inbox_counts
    from storage.outbox import outbox_counts

    checks = []
    notifications = outbox_counts(database).get("dead", 0)
    if notifications:
        checks.append(
            Check(
                "outbox",
                Level.WARN,
                f"{notifications} notification{'s were' if notifications > 1 else ' was'} given up on.",
                "`shepherd outbox list-dead` shows why; `shepherd outbox retry --all` sends them again "
                "once the cause is fixed.",
            )
        )
    requests = inbox_counts(database).get("dead", 0)
    if requests:
        checks.append(
            Check(
                "inbox",
                Level.WARN,
                f"{requests} request{'s' if requests > 1 else ''} (Approve clicks, decision forms) could "
                "not be recorded; each person was told to try again.",
                "The worker's log says why (search it for 'dead').",
            )
        )
    return checks


def _upkeep(database: Database) -> list[Check]:
    """PostgreSQL only: a WARN if autovacuum leaves the tables updated on every request alone."""
    tables = database.tables_without_autovacuum()
    if not tables:
        return []
    return [
        Check(
            "database",
            Level.WARN,
            f"Autovacuum does not run on {', '.join(tables)}: they change on every click and page, "
            "and without it they keep their dead rows and stale statistics, so acks slow down.",
            "Turn autovacuum on (postgresql.conf: autovacuum = on, the default), or ALTER TABLE ... "
            "RESET (autovacuum_enabled); failing that, run VACUUM ANALYZE every few minutes.",
        )
    ]


# ---------------------------------------------------------------- knowledge


def check_chroma(settings: Settings) -> list[Check]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    try:
        if settings.chroma_url:
            url = urlparse(
                settings.chroma_url if "://" in settings.chroma_url else f"http://{settings.chroma_url}"
            )
            if not url.hostname:
                return [
                    Check(
                        "chroma",
                        Level.FAIL,
                        f"SHEPHERD_CHROMA_URL is not a URL: {settings.chroma_url!r}.",
                        "Use http://HOST:8000 (or unset it for the embedded store).",
                    )
                ]
            ssl = url.scheme == "https"
            client = chromadb.HttpClient(
                host=url.hostname, port=url.port or (443 if ssl else 8000), ssl=ssl, settings=chroma_settings
            )
            where = f"Chroma server {settings.chroma_url}"
        else:
            path = Path(settings.data_dir) / "knowledge" / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            where = f"embedded Chroma at {path}"
        collections = client.list_collections()
        chunks = sum(client.get_collection(c.name).count() for c in collections)
    except Exception as error:
        fix = (
            "Start the Chroma server or correct SHEPHERD_CHROMA_URL (unset it to use the embedded store)."
            if settings.chroma_url
            else "Check that SHEPHERD_DATA_DIR is writable and not used by another Chroma version."
        )
        return [Check("chroma", Level.FAIL, f"Cannot open the policy store: {_first_line(error)}.", fix)]
    if chunks == 0:
        return [
            Check(
                "chroma",
                Level.WARN,
                f"{where} opens but holds no policy passages yet.",
                "Run `shepherd knowledge ingest` (or `shepherd run`, which ingests the policy pack).",
            )
        ]
    return [Check("chroma", Level.OK, f"{where}: {len(collections)} collections, {chunks} passages.")]


def check_embeddings(settings: Settings) -> list[Check]:
    from knowledge.embeddings import EmbeddingUnavailableError, resolve_embedder

    spec = settings.embeddings
    try:
        embedder = resolve_embedder(
            spec,
            onnx_model_dir=settings.embedding_model_dir,
            openai_base_url=settings.openai_base_url,
            openai_api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        )
    except ValueError as error:
        return [
            Check(
                "embedding model",
                Level.FAIL,
                f"SHEPHERD_EMBEDDINGS={spec!r} is not understood: {error}.",
                "Use auto, none, default, onnx:PATH or openai:MODEL.",
            )
        ]
    except EmbeddingUnavailableError as error:
        return [
            Check(
                "embedding model",
                Level.WARN,
                f"Embeddings {spec!r} unavailable ({_first_line(error)}); policy search falls back to BM25 only.",
                "Point SHEPHERD_EMBEDDING_MODEL_DIR at a folder holding onnx/model.onnx and tokenizer.json "
                "(all-MiniLM-L6-v2), or set SHEPHERD_EMBEDDINGS=openai:MODEL with OPENAI_BASE_URL.",
            )
        ]
    if embedder is None:
        return [
            Check("embedding model", Level.OK, "Embeddings are off (SHEPHERD_EMBEDDINGS=none): BM25 search.")
        ]
    mismatch = _store_mismatch(settings)
    if mismatch is not None:
        return [
            Check(
                "embedding model",
                Level.WARN,
                f"{embedder.label} loads, but {mismatch}.",
                "Run `shepherd knowledge ingest` on the policy folder (or `shepherd run`, which ingests it).",
            )
        ]
    return [Check("embedding model", Level.OK, f"{embedder.label} loads and embeds.")]


def _store_mismatch(settings: Settings) -> str | None:
    """Why the policy store's vectors do not fit the configured model, if they do not (a store
    that cannot open is check_chroma's to report)."""
    from bot.bootstrap import knowledge_base
    from knowledge import KnowledgeError

    try:
        return knowledge_base(settings).store_mismatch
    except KnowledgeError:
        return None


def check_glossary(settings: Settings) -> list[Check]:
    """The glossary loads: with a broken one, the knowledge base does not open, and the bot
    answers without any policy guidance (it only logs a warning at start)."""
    from knowledge.glossary import DEFAULT_GLOSSARY, GlossaryError, load_glossary

    try:
        glossary = load_glossary(settings.glossary)
    except GlossaryError as error:
        return [
            Check(
                "glossary",
                Level.FAIL,
                f"The glossary cannot be used ({error}): the bot answers without policy guidance.",
                "Fix the file, unset SHEPHERD_GLOSSARY for the bundled one, or set it to none.",
            )
        ]
    if glossary is None:
        return [
            Check(
                "glossary", Level.OK, "No glossary (SHEPHERD_GLOSSARY=none): questions are searched as typed."
            )
        ]
    return [
        Check("glossary", Level.OK, f"{settings.glossary or DEFAULT_GLOSSARY.name + ' (bundled)'} loads.")
    ]


# ---------------------------------------------------------------- LLM


def check_llm(settings: Settings) -> list[Check]:
    import openai

    if not settings.llm_model:
        return [
            Check(
                "llm",
                Level.WARN,
                "No LLM configured (SHEPHERD_LLM_MODEL): answers quote the best policy passages instead.",
                "Set SHEPHERD_LLM_MODEL plus OPENAI_API_KEY (and OPENAI_BASE_URL for a local or other "
                "OpenAI-compatible server).",
            )
        ]
    if not settings.llm_configured:
        return [
            Check(
                "llm",
                Level.FAIL,
                f"SHEPHERD_LLM_MODEL={settings.llm_model} is set but neither OPENAI_API_KEY nor OPENAI_BASE_URL is.",
                "Set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible server).",
            )
        ]
    base_url = settings.openai_base_url or "https://api.openai.com/v1"
    client = openai.OpenAI(
        base_url=base_url,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused",
        timeout=TIMEOUT_SECONDS,
        max_retries=0,
    )
    try:
        models = [m.id for m in client.models.list()]
    except openai.AuthenticationError:
        return [
            Check(
                "llm",
                Level.FAIL,
                f"The LLM endpoint {base_url} refused OPENAI_API_KEY (401).",
                "Put a valid key in OPENAI_API_KEY.",
            )
        ]
    except openai.APIConnectionError as error:
        return [
            Check(
                "llm",
                Level.FAIL,
                f"Cannot reach the LLM endpoint {base_url}: {_first_line(error)}.",
                "Check OPENAI_BASE_URL (scheme, host, port, the /v1 suffix) and that the server is running.",
            )
        ]
    except openai.APIStatusError as error:
        return _probe_completion(
            client, settings.llm_model, base_url, f"/models answered {error.status_code}"
        )
    finally:
        client.close()
    if settings.llm_model not in models:
        return [
            Check(
                "llm",
                Level.WARN,
                f"{base_url} answers, but does not list the model {settings.llm_model!r} "
                f"({len(models)} models listed).",
                f"Set SHEPHERD_LLM_MODEL to one of: {', '.join(models[:5]) or 'the models your server serves'}.",
            )
        ]
    return [Check("llm", Level.OK, f"{base_url} answers and serves {settings.llm_model}.")]


def _probe_completion(client: object, model: str, base_url: str, why: str) -> list[Check]:
    import openai

    assert isinstance(client, openai.OpenAI)
    try:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "ping"}], max_tokens=1
        )
    except openai.APIError as error:
        return [
            Check(
                "llm",
                Level.FAIL,
                f"{base_url}: {why}, and a 1-token completion with {model!r} failed: {_first_line(error)}.",
                "Check SHEPHERD_LLM_MODEL and OPENAI_BASE_URL against what your server serves.",
            )
        ]
    return [Check("llm", Level.OK, f"{base_url} completes with {model} ({why}).")]


def _first_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


CHECKS: tuple[Callable[[Settings], list[Check]], ...] = (
    check_pipeline,
    check_slack_tokens,
    check_signing_secret,
    check_database,
    check_installation,
    check_registry_channel,
    check_chroma,
    check_embeddings,
    check_glossary,
    check_llm,
)
