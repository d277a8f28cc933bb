"""Fixtures for the playground: a running playground, its web server, and (for browser tests)
Debian's Chromium driven by Playwright, with a screenshot saved when a test fails."""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.emulator.serving import BackgroundASGIServer
from bot.playground import Playground, web_app
from bot.settings import Settings
from tests.conftest import REPO_ROOT, require

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``predicate`` until it returns something truthy (the bot answers after its ack)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class RunningPlayground:
    """A started playground and the URL of its page."""

    def __init__(self, playground: Playground, url: str) -> None:
        self.playground = playground
        self.url = url


def _start(tmp: Path) -> Iterator[RunningPlayground]:
    settings = Settings(data_dir=tmp, embeddings="none", _env_file=None)  # type: ignore[call-arg]
    playground = Playground(settings, knowledge_factory=lambda: None).start()
    server = BackgroundASGIServer(web_app(playground, long_poll_seconds=5)).start()
    try:
        yield RunningPlayground(playground, server.url)
    finally:
        # Release waiting long polls first, so the web server can stop at once.
        playground.changes.close()
        server.stop()
        playground.stop()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningPlayground]:
    """A fresh playground (emulator, bot, worker) with its web page on a free port."""
    yield from _start(tmp_path)


@pytest.fixture(scope="module")
def shared_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlayground]:
    """One playground for a whole module of browser tests (they use separate conversations)."""
    yield from _start(tmp_path_factory.mktemp("playground"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium, one per module."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    require(importlib.util.find_spec("playwright") is not None, "the playwright package is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page; its screenshot goes to test-artifacts/ when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.page_errors = errors
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
