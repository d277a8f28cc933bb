"""Fixtures for bot tests: the local Slack emulator, started fresh for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.emulator.state import Channel
from bot.emulator.webapi import FakeSlackWebAPI

OWNER = "U0OWNER01"
RISK_OFFICER = "U0RISK001"
OUTSIDER = "U0OUTSIDE"


@pytest.fixture
def slack_api() -> Iterator[FakeSlackWebAPI]:
    """A running fake Slack Web API with three people in its workspace."""
    api = FakeSlackWebAPI()
    api.state.add_user(OWNER, "olivia", "Olivia Owner", email="olivia@example.com")
    api.state.add_user(RISK_OFFICER, "rafael", "Rafael Risk")
    api.state.add_user(OUTSIDER, "oscar", "Oscar Outside")
    with api:
        yield api


@pytest.fixture
def web_client(slack_api: FakeSlackWebAPI) -> WebClient:
    """The real slack_sdk WebClient pointed at the fake, without retry handlers."""
    return slack_api.web_client(retry_handlers=[])


@pytest.fixture
def registry(slack_api: FakeSlackWebAPI) -> Channel:
    """The registry channel: the bot, the owner and the risk officer are members."""
    return slack_api.state.add_channel("shepherd-registry", members=[OWNER, RISK_OFFICER])
