"""Shepherd's configuration: the only code that reads the environment.

Every other module receives plain values. Secrets are ``SecretStr`` so they never end up in a
log line or a traceback by accident.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Slack user ids: a JSON list, as pydantic-settings reads lists, or simply separated by commas
# or spaces, as people write them (SHEPHERD_ROLE_ADMINS=U012,U034).
UserIds = Annotated[list[str], NoDecode]

# SQLite's PRAGMA synchronous modes, as SHEPHERD_SQLITE_SYNCHRONOUS may name them (any case).
SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

# An address with a port in SHEPHERD_HOST: "0.0.0.0:3000", "[::1]:3000" (or "[::1]", bracketed).
_HOST_AND_PORT = re.compile(
    r"(?P<address>[^:\[\]]*):(?P<port>\d*)|\[(?P<bracketed>[^\]]*)\](?::(?P<bracketed_port>\d*))?"
)


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Read from the environment (and a ``.env`` file in the working directory, if present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path(".data"), validation_alias=_env("SHEPHERD_DATA_DIR"))
    pipeline: Path | None = Field(default=None, validation_alias=_env("SHEPHERD_PIPELINE"))
    database_url: str | None = Field(default=None, validation_alias=_env("SHEPHERD_DATABASE_URL"))
    sqlite_synchronous: str = Field(default="NORMAL", validation_alias=_env("SHEPHERD_SQLITE_SYNCHRONOUS"))
    """WAL with NORMAL survives a crash of the process (no committed write is lost) but may lose
    the last commits on power loss; FULL also survives power loss, at one disk sync per commit."""
    policies_dir: Path | None = Field(default=None, validation_alias=_env("SHEPHERD_POLICIES"))
    embeddings: str = Field(default="auto", validation_alias=_env("SHEPHERD_EMBEDDINGS"))
    glossary: str | None = Field(default=None, validation_alias=_env("SHEPHERD_GLOSSARY"))
    """Words keyword search adds to questions: unset for the bundled glossary, ``none``, or a YAML file."""
    embedding_model_dir: Path | None = Field(
        default=None, validation_alias=_env("SHEPHERD_EMBEDDING_MODEL_DIR")
    )
    chroma_url: str | None = Field(default=None, validation_alias=_env("SHEPHERD_CHROMA_URL"))

    llm_model: str | None = Field(default=None, validation_alias=_env("SHEPHERD_LLM_MODEL"))
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL"))
    ask_workers: int = Field(default=4, ge=1, le=64, validation_alias=_env("SHEPHERD_ASK_WORKERS"))
    """Questions answered at once (policy search, the LLM, the streaming updates). Twice as many
    more may wait; past that, the person is told Shepherd is busy and to ask again in a minute."""

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_BOT_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("SLACK_SIGNING_SECRET")
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_APP_TOKEN"))
    slack_api_url: str | None = Field(default=None, validation_alias=_env("SLACK_API_URL"))
    slack_client_id: str | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(default=None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    slack_team_id: str | None = Field(default=None, validation_alias=_env("SLACK_TEAM_ID"))
    """OAuth installs: the workspace notifications are sent as (default: the latest installation)."""
    registry_channel: str | None = Field(default=None, validation_alias=_env("SHEPHERD_REGISTRY_CHANNEL"))
    role_admins: UserIds = Field(default_factory=list, validation_alias=_env("SHEPHERD_ROLE_ADMINS"))
    governance_leads: UserIds = Field(
        default_factory=list, validation_alias=_env("SHEPHERD_GOVERNANCE_LEADS")
    )

    host: str = Field(default="127.0.0.1", validation_alias=_env("SHEPHERD_HOST"))
    port: int = Field(default=3000, ge=1, le=65535, validation_alias=_env("SHEPHERD_PORT", "PORT"))
    # HTTP mode: processes answering Slack on the same port (one Python process acks on one core).
    http_processes: int = Field(default=1, ge=1, le=64, validation_alias=_env("SHEPHERD_HTTP_PROCESSES"))
    log_json: bool = Field(default=False, validation_alias=_env("SHEPHERD_LOG_JSON"))
    log_level: str = Field(default="INFO", validation_alias=_env("SHEPHERD_LOG_LEVEL"))
    scheduler_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        allow_inf_nan=False,
        validation_alias=_env("SHEPHERD_SCHEDULER_INTERVAL"),
    )
    """Seconds between scheduler ticks (time boxes, reminders, periodic reviews); 0 disables it.
    At most a day: reminders and time boxes are counted in days. A longer wait (``inf`` meant as
    "never", 1e10) cannot be waited for: the scheduler would die at its first tick."""
    retention_days: int = Field(default=90, ge=7, le=36500, validation_alias=_env("SHEPHERD_RETENTION_DAYS"))
    """Days bookkeeping rows are kept (delivered notifications, applied requests, Slack retry
    claims, answers kept for votes): ``storage.retention``. At least a week, well past Slack's
    retries and the day a notification may wait out an outage. At most 100 years, "keep for
    ever" in practice: a period reaching back before year 1 (999999 days, say) cannot be
    computed, and every prune would fail on it; refused here, it is named like any bad setting."""

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        # Checked here, not where logging is set up: a worker child given a name logging does
        # not know died at start and was restarted forever.
        level = logging.getLevelNamesMapping().get(value.strip().upper())
        if level is None:
            raise ValueError("use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return logging.getLevelName(level)  # WARN and FATAL as their usual names

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        # A host written as a URL or with its port ("0.0.0.0:3000") reached uvicorn, which said
        # only "Name or service not known", naming no setting. IPv6 addresses are all colons
        # ("::"), so a port is recognised after one colon only, or after "]".
        text = value.strip()
        if "/" in text:
            parts = urlsplit(text if "://" in text else f"//{text}")
            address = parts.hostname or text
            raise ValueError(f"put the address alone in SHEPHERD_HOST ({address}), without http:// or a path")
        found = _HOST_AND_PORT.fullmatch(text)
        if found is not None:
            address = found["bracketed"] or found["address"] or "0.0.0.0"  # ":3000": every interface
            port = found["port"] or found["bracketed_port"]
            if port:
                raise ValueError(
                    f"put the address alone in SHEPHERD_HOST ({address}) and the port in SHEPHERD_PORT ({port})"
                )
            raise ValueError(
                f"put the address alone in SHEPHERD_HOST ({address}), without brackets or a colon"
            )
        return text

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sqlite_synchronous(cls, value: str) -> str:
        mode = value.strip().upper()
        if mode not in SQLITE_SYNCHRONOUS:
            raise ValueError("use OFF, NORMAL, FULL or EXTRA")
        return mode

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_client_id",
        "slack_client_secret",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # ``SLACK_SIGNING_SECRET=`` as a .env template leaves it: not set, rather than a secret
        # Slack's requests are checked against (and all refused with a 500, each time).
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("role_admins", "governance_leads", mode="before")
    @classmethod
    def _user_ids(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    'expected a JSON list like ["U012AB3CD"], or ids separated by commas'
                ) from None
        return [part for part in re.split(r"[,\s]+", text) if part]

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or a SQLite file in the data directory (the embedded default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'shepherd.db').resolve()}"

    def revealed(self) -> dict[str, Any]:
        """Every setting by field name, secrets in plain text: what a child process is handed
        (on a pipe, never a command line) to build the same ``Settings`` with ``model_validate``."""
        return {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in self.model_dump(mode="python").items()
        }

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def slack_missing(self) -> str | None:
        """What serving Slack still needs, naming the variables to set; None when nothing is."""
        if not (self.slack_bot_token or self.oauth_enabled):
            if self.slack_client_id:
                return "SLACK_CLIENT_SECRET (OAuth installs need it with SLACK_CLIENT_ID)"
            if self.slack_client_secret:
                return "SLACK_CLIENT_ID (OAuth installs need it with SLACK_CLIENT_SECRET)"
            return (
                "SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (OAuth installs)"
            )
        # Socket Mode's requests come over the connection SLACK_APP_TOKEN opens: nothing to sign.
        if not (self.slack_app_token or self.slack_signing_secret):
            return "SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"
        return None

    @property
    def wrong_slack_token(self) -> tuple[str, str] | None:
        """A token pasted into the wrong variable: what is wrong, and where the right token is;
        None when each holds the kind it needs (or one whose prefix does not tell)."""
        where = "api.slack.com/apps > your app"
        bot = _token_kind(self.slack_bot_token)
        if bot is not None and bot != "bot":
            why = {
                "user": ": Shepherd would post as that person.",
                "app-level": ", which belongs in SLACK_APP_TOKEN.",
                "refresh": ".",
            }[bot]
            return (
                f"SLACK_BOT_TOKEN holds {_KIND_NAMES[bot]}{why}",
                f"Put the Bot User OAuth Token (xoxb-...) from {where} > OAuth & Permissions in "
                "SLACK_BOT_TOKEN.",
            )
        app = _token_kind(self.slack_app_token)
        if self.slack_app_token is not None and app != "app-level":
            held = f"holds {_KIND_NAMES[app]}, not" if app is not None else "is not"
            return (
                f"SLACK_APP_TOKEN {held} an app-level token (xapp-...).",
                f"Create one with the connections:write scope at {where} > Basic Information > "
                "App-Level Tokens, and put it in SLACK_APP_TOKEN.",
            )
        return None

    @property
    def slack_configured(self) -> bool:
        return self.slack_missing is None

    def is_steward(self, user_id: str) -> bool:
        """Governance leads and role admins: they see the portfolio (Slack command and App Home)
        and may hold, resume or retire any initiative, not only their own."""
        return bool(user_id) and (user_id in self.governance_leads or user_id in self.role_admins)

    def sees_portfolio(self, user_id: str) -> bool:
        return self.is_steward(user_id)

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model and (self.openai_api_key or self.openai_base_url))


# Slack's token prefixes, by kind; a rotating token has ``xoxe.`` before its own prefix.
_TOKEN_PREFIXES = {"xoxb-": "bot", "xoxp-": "user", "xapp-": "app-level", "xoxe-": "refresh"}
_KIND_NAMES = {
    "bot": "a bot token (xoxb-...)",
    "user": "a user token (xoxp-...)",
    "app-level": "an app-level token (xapp-...)",
    "refresh": "a refresh token (xoxe-...)",
}


def _token_kind(token: SecretStr | None) -> str | None:
    """Which kind of Slack token ``token`` is, by its prefix; None if unset or not known."""
    if token is None:
        return None
    text = token.get_secret_value().strip().removeprefix("xoxe.")
    return next((kind for prefix, kind in _TOKEN_PREFIXES.items() if text.startswith(prefix)), None)


def settings_problems(error: ValidationError) -> list[str]:
    """What is wrong with the settings, a line each, named as they are set (the environment
    variable, or the ``.env`` line), rather than pydantic's report."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        info = Settings.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        name = alias.choices[0] if isinstance(alias, AliasChoices) else field
        given = problem.get("input")
        secret = any(word in f"{field} {name}".lower() for word in ("secret", "token", "key"))
        shown = f" (it is {given!r})" if isinstance(given, str | int | float) and not secret else ""
        lines.append(f"{name}: {problem['msg']}{shown}")
    return lines
