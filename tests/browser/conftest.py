"""Real headless Chromium (Debian's package, driven by Playwright) against a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.browser.origins import Keyed, SecondOrigin, create_keys
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
#: Everything that would reach for the network (updates, sync, QUIC) is off: the tests pass on
#: a machine without internet access. Playwright adds --headless and a fresh --user-data-dir.
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def visitor_agent(version: str) -> str:
    """Desktop Chrome's User-Agent for this Chromium version."""
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{version} Safari/537.36"
    )


# Module scope, not session: while Playwright's sync API is running it holds an asyncio loop
# on this thread, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("no chromium on PATH: `make browser-deps` installs Debian's chromium package")
    with sync_playwright() as playwright:
        # Headless Chromium names itself HeadlessChrome, a crawler's name whose events the
        # server drops (src/clickstats/bots.py); the tests play visitors, so the browser says
        # desktop Chrome. A flag, not a context's user_agent: beacons sent while a page goes
        # away carry the browser's own User-Agent.
        probe = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        version = probe.version
        probe.close()
        browser = playwright.chromium.launch(
            executable_path=path, args=[*CHROMIUM_ARGS, f"--user-agent={visitor_agent(version)}"]
        )
        yield browser
        browser.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "browser.duckdb").start()
    yield server
    server.stop()


class Tab:
    """A page in a fresh context (empty localStorage: a new visitor), with its console errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text} ({message.location})")


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(10_000)
    yield Tab(context.new_page())
    context.close()


@pytest.fixture
def second_origin() -> Iterator[SecondOrigin]:
    origin = SecondOrigin().start()
    yield origin
    origin.stop()


@pytest.fixture
def keyed(tmp_path: Path, second_origin: SecondOrigin) -> Iterator[Keyed]:
    """`clickstats serve` with keys on; its ingest key is accepted only from the second origin."""
    store_path = tmp_path / "keyed.duckdb"
    keys = create_keys(store_path, second_origin.url)
    server = LiveServer(store_path).start()
    yield Keyed(server, keys)
    server.stop()
