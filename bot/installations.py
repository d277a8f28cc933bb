"""The bot token notifications go out with when Shepherd is installed through OAuth.

Listeners get their workspace's token from Bolt (its authorize step reads the installation
store for each request). The outbox worker has no request to go by: it sends as the one
workspace Shepherd's registry lives in, ``SLACK_TEAM_ID`` when set, otherwise the most recent
installation. The token is re-read every ``ttl`` seconds, so a reinstall takes effect without a
restart, and refreshed with slack_sdk's ``TokenRotator`` when the app uses token rotation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.token_rotation import TokenRotator
from sqlalchemy import desc, select

from bot.settings import Settings
from bot.slack_client import make_client
from storage.database import Database
from storage.outbox import Postponed


class NotInstalled(Postponed):
    """No installation to send as yet: the outbox keeps the messages, without counting attempts,
    until there is one."""


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
        team_id: the workspace to send as; None for the most recent installation.
        rotator: refreshes an expiring token (apps with token rotation turned on).
        ttl: seconds a token is reused before the store is read again.
    """

    def __init__(
        self,
        store: SQLAlchemyInstallationStore,
        team_id: str | None = None,
        rotator: TokenRotator | None = None,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._team_id = team_id
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
                where = f"workspace {self._team_id}" if self._team_id else "any workspace"
                raise NotInstalled(
                    f"Shepherd is not installed in {where} yet: open /slack/install to install it. "
                    "Notifications wait in the outbox until then."
                )
            self._cached = (installation.bot_token, now)
            return installation.bot_token

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
        """The newest installation of the workspace (any Enterprise Grid org), or of any."""
        table = self._store.installations
        query = select(table).where(
            table.c.client_id == self._store.client_id, table.c.bot_token.is_not(None)
        )
        if self._team_id:
            query = query.where(table.c.team_id == self._team_id)
        query = query.order_by(desc(table.c.installed_at)).limit(1)
        with self._store.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else self._store.build_installation_entity(row)


def installed_bot_token(settings: Settings, database: Database) -> InstalledBotToken:
    """The token source for this deployment's OAuth settings."""
    assert settings.slack_client_secret is not None, "installed_bot_token needs SLACK_CLIENT_SECRET"
    rotator = TokenRotator(
        client_id=settings.slack_client_id or "",
        client_secret=settings.slack_client_secret.get_secret_value(),
        client=make_client(None, settings.slack_api_url),
    )
    return InstalledBotToken(installation_store(settings, database), settings.slack_team_id, rotator)


def current_client(settings: Settings, database: Database, client: WebClient) -> Callable[[], WebClient]:
    """What gives a client able to call Slack now: ``client`` itself, or with OAuth a client of
    the calling thread carrying the installation's current token (so Bolt's own client is never
    changed, and no thread's token changes under another's call)."""
    if not settings.oauth_enabled:
        return lambda: client
    tokens = installed_bot_token(settings, database)
    local = threading.local()

    def current() -> WebClient:
        token = tokens.current()
        if not hasattr(local, "client"):
            local.client = make_client(None, settings.slack_api_url)
        local.client.token = token
        return local.client  # type: ignore[no-any-return]

    return current
