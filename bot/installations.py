"""The bot token notifications go out with when Shepherd is installed through OAuth.

Listeners get their workspace's token from Bolt (its authorize step reads the installation
store for each request). The outbox worker sends a reply to a person's request as that
request's workspace (the ``team_id`` / ``enterprise_id`` its payload records, ``workspace_of``),
and everything else as the one workspace Shepherd's registry lives in: ``SLACK_TEAM_ID`` when
set, otherwise the workspace that installed first. The token is re-read every ``ttl`` seconds,
so a reinstall takes effect without a restart, and refreshed with slack_sdk's ``TokenRotator``
when the app uses token rotation. A token Slack refuses (revoked, uninstalled) is forgotten at
once and its messages wait, as before any install; ``Revocations`` removes revoked tokens from
the store when Slack says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.token_rotation import TokenRotator
from sqlalchemy import ColumnElement, and_, desc, select, update

from bot.settings import Settings
from bot.slack_client import make_client
from storage.database import Database
from storage.outbox import Postponed

# What Slack answers a token it no longer accepts: the app was uninstalled, the token revoked,
# its installer deactivated. A reinstall is the only fix, so messages wait for one.
REFUSED_TOKEN = frozenset({"invalid_auth", "token_revoked", "account_inactive", "not_authed"})


class NotInstalled(Postponed):
    """No installation to send as yet: the outbox keeps the messages, without counting attempts,
    until there is one."""


@dataclass(frozen=True)
class Workspace:
    """Where a request came from, keyed as the installation store keys it (``team_id`` is None
    for an org-wide Enterprise Grid install)."""

    team_id: str | None
    enterprise_id: str | None = None

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Workspace | None:
        """The workspace an outbox payload answers, or None for the registry workspace's messages."""
        if not (payload.get("team_id") or payload.get("enterprise_id")):
            return None
        return cls(payload.get("team_id"), payload.get("enterprise_id"))

    def __str__(self) -> str:
        return f"workspace {self.team_id or self.enterprise_id}"


def installation_store(settings: Settings, database: Database) -> SQLAlchemyInstallationStore:
    """slack_sdk's installation store, in Shepherd's own database."""
    assert settings.slack_client_id, "installation_store needs SLACK_CLIENT_ID"
    return SQLAlchemyInstallationStore(client_id=settings.slack_client_id, engine=database.engine)


class InstalledBotToken:
    """``current()`` is the bot token to send notifications with.

    Rotation goes through the whole installation and ``store.save`` (both of the store's tables),
    as Bolt's own authorize step does: Slack revokes a refresh token once it is used, so the
    worker and Bolt must always find the newest one, whichever of them refreshed it.

    Args:
        store: where OAuth installations are kept.
        team_id: the workspace to send as; with ``enterprise_id`` None too, the registry
            workspace: the one that installed first.
        rotator: refreshes an expiring token (apps with token rotation turned on).
        ttl: seconds a token is reused before the store is read again.
        enterprise_id: the Enterprise Grid org (alone: an org-wide install).
    """

    def __init__(
        self,
        store: SQLAlchemyInstallationStore,
        team_id: str | None = None,
        rotator: TokenRotator | None = None,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        enterprise_id: str | None = None,
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._enterprise_id = enterprise_id
        self._rotator = rotator
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None

    def current(self) -> str:
        """The token.

        Raises:
            NotInstalled: nobody has installed Shepherd (in that workspace) yet.
        """
        with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[1] < self._ttl:
                return self._cached[0]
            installation = self.installation()
            if installation is not None and installation.bot_refresh_token and self._rotator is not None:
                installation = self._rotated(installation)
            if installation is None or not installation.bot_token:
                where = self._team_id or self._enterprise_id
                raise NotInstalled(
                    f"Shepherd is not installed in {f'workspace {where}' if where else 'any workspace'} "
                    "yet: open /slack/install to install it. Notifications wait in the outbox until then."
                )
            self._cached = (installation.bot_token, now)
            return installation.bot_token

    def forget(self, token: str) -> None:
        """Stop using ``token`` now rather than after ``ttl``: Slack refused it (revoked)."""
        with self._lock:
            if self._cached is not None and self._cached[0] == token:
                self._cached = None

    def _rotated(self, installation: Installation) -> Installation | None:
        assert self._rotator is not None
        try:
            refreshed = self._rotator.perform_token_rotation(installation=installation)
        except SlackTokenRotationError:
            # Another process (Bolt, another worker) refreshed it first: its token is stored.
            return self.installation()
        if refreshed is None:
            return installation  # not expiring yet
        self._store.save(refreshed)
        return refreshed

    def installation(self) -> Installation | None:
        """The newest installation with a bot token of the workspace (any Enterprise Grid org
        unless ``enterprise_id`` is given), or of the workspace that installed first."""
        table = self._store.installations
        ours = table.c.client_id == self._store.client_id
        with self._store.engine.connect() as connection:
            if self._team_id:
                where = table.c.team_id == self._team_id
                if self._enterprise_id:
                    where = and_(where, table.c.enterprise_id == self._enterprise_id)
            elif self._enterprise_id:
                where = and_(table.c.enterprise_id == self._enterprise_id, table.c.team_id.is_(None))
            else:
                # The registry's workspace is the first to install (while it stays installed): a
                # second workspace installing must not take over the registry's cards and DMs.
                first = connection.execute(
                    select(table.c.enterprise_id, table.c.team_id)
                    .where(ours)
                    .order_by(table.c.installed_at)
                    .limit(1)
                ).first()
                if first is None:
                    return None
                where = and_(_same(table.c.enterprise_id, first[0]), _same(table.c.team_id, first[1]))
            query = select(table).where(ours, where, table.c.bot_token.is_not(None))
            row = connection.execute(query.order_by(desc(table.c.installed_at)).limit(1)).mappings().first()
        return None if row is None else self._store.build_installation_entity(row)


def _same(column: ColumnElement[Any], value: str | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


class InstalledClients:
    """Clients carrying installations' current tokens: one client per calling thread, its token
    set before each use, so Bolt's own client is never changed and no thread's token changes
    under another's call."""

    def __init__(self, settings: Settings, database: Database) -> None:
        assert settings.slack_client_secret is not None, "InstalledClients needs SLACK_CLIENT_SECRET"
        self._store = installation_store(settings, database)
        self._rotator = TokenRotator(
            client_id=settings.slack_client_id or "",
            client_secret=settings.slack_client_secret.get_secret_value(),
            client=make_client(None, settings.slack_api_url),
        )
        self._registry_team = settings.slack_team_id
        self._api_url = settings.slack_api_url
        self._tokens: dict[Workspace | None, InstalledBotToken] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def tokens(self, workspace: Workspace | None = None) -> InstalledBotToken:
        """``workspace``'s token source; None for the registry workspace's."""
        with self._lock:
            if workspace not in self._tokens:
                team, org = (
                    (workspace.team_id, workspace.enterprise_id) if workspace else (self._registry_team, None)
                )
                self._tokens[workspace] = InstalledBotToken(
                    self._store, team, self._rotator, enterprise_id=org
                )
            return self._tokens[workspace]

    def client(self, workspace: Workspace | None = None) -> WebClient:
        """This thread's client, with ``workspace``'s current token.

        Raises:
            NotInstalled: Shepherd is not installed there (any more).
        """
        token = self.tokens(workspace).current()
        # One per workspace too: a delivery for the registry may speak in another workspace in
        # the middle (``SlackNotifier``'s ``elsewhere``) and go on with the registry's token.
        clients: dict[Workspace | None, WebClient] = self._local.__dict__.setdefault("clients", {})
        if workspace not in clients:
            clients[workspace] = make_client(None, self._api_url)
        client = clients[workspace]
        client.token = token
        return client

    @contextmanager
    def sending(self, workspace: Workspace | None = None) -> Iterator[WebClient]:
        """``client(workspace)`` for an outbox delivery. If Slack refuses its token (uninstalled,
        revoked), the token is forgotten at once and the message waits for a reinstall, as it
        would before any install, instead of using up attempts and being dead-lettered.

        Raises:
            NotInstalled: not installed there, or Slack refused the token. It holds back the
                round's other messages for the same workspace only (the outbox worker's
                ``waits_with`` is ``Workspace.of``): a workspace waiting for a reinstall must not
                delay another's.
        """
        slack = self.client(workspace)
        token = slack.token
        try:
            yield slack
        except SlackApiError as error:
            code = str(error.response.get("error", ""))
            if code not in REFUSED_TOKEN:
                raise
            self.tokens(workspace).forget(token or "")
            where = workspace or "the registry workspace"
            raise NotInstalled(
                f"Slack refused the token of {where} ({code}): Shepherd was uninstalled or its token "
                "revoked. Reinstall it at /slack/install; notifications wait in the outbox until then."
            ) from error


def current_client(settings: Settings, database: Database, client: WebClient) -> Callable[[], WebClient]:
    """What gives a client able to call Slack now as the registry workspace: ``client`` itself,
    or with OAuth a client of the calling thread carrying the installation's current token."""
    if not settings.oauth_enabled:
        return lambda: client
    return InstalledClients(settings, database).client


class Revocations:
    """Slack's ``app_uninstalled`` and ``tokens_revoked`` events, applied to the installation store.

    Bolt's own listeners for them (``App.enable_token_revocation_listeners``) only delete the
    bots rows on ``tokens_revoked``, while Bolt's authorize and ``InstalledBotToken`` read the
    bot token from the installations rows: here the revoked tokens go from both.
    """

    def __init__(self, store: SQLAlchemyInstallationStore) -> None:
        self._store = store

    def app_uninstalled(self, context: BoltContext) -> None:
        self._store.delete_all(**_workspace_keys(context))

    def tokens_revoked(self, event: dict[str, Any], context: BoltContext) -> None:
        revoked = event.get("tokens") or {}
        keys = _workspace_keys(context)
        table = self._store.installations
        c = table.c
        workspace = and_(
            c.client_id == self._store.client_id,
            _same(c.enterprise_id, keys["enterprise_id"]),
            _same(c.team_id, keys["team_id"]),
        )
        with self._store.engine.begin() as connection:
            users = [str(user) for user in revoked.get("oauth") or []]
            if users:
                # Only the user tokens: the bot token stored with them may still be good.
                no_user_token = {
                    "user_token": None,
                    "user_refresh_token": None,
                    "user_token_expires_at": None,
                }
                connection.execute(update(table).where(workspace, c.user_id.in_(users)).values(no_user_token))
            if revoked.get("bot"):
                no_bot_token = {"bot_token": None, "bot_refresh_token": None, "bot_token_expires_at": None}
                connection.execute(update(table).where(workspace).values(no_bot_token))
        if revoked.get("bot"):
            self._store.delete_bot(**keys)


def _workspace_keys(context: BoltContext) -> dict[str, str | None]:
    # An org-wide install is stored without a team, as Bolt's authorize looks it up.
    team = None if context.is_enterprise_install else context.team_id
    return {"enterprise_id": context.enterprise_id, "team_id": team}
