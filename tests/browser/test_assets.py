"""The tracker and the demo page are served from the package, whole, and reach for nothing outside."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.settings import Settings
from tests.browser.conftest import ROOT

WEB = ROOT / "src" / "clickstats" / "web"
#: An absolute or protocol-relative URL to another host (a CDN, a font, an analytics script).
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.I)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # No `with`: these routes need no store, so the app's lifespan is not run.
    tmp = tmp_path_factory.mktemp("web")
    settings = Settings(store=f"duckdb://{tmp}/x.duckdb", experiments=str(tmp / "e.json"))
    yield TestClient(create_app(settings))


def test_tracker_js_is_served_as_a_cacheable_script(client: TestClient) -> None:
    r = client.get("/analytics/tracker.js")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.content == (WEB / "tracker.js").read_bytes()
    assert len(r.content) < 16_000  # small enough to embed on every search page
    for needed in ("sendBeacon", "keepalive", "randomUUID", "localStorage", "ClickStats"):
        assert needed in r.text


def test_demo_page_and_every_file_it_loads_are_served(client: TestClient) -> None:
    r = client.get("/demo")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    loaded = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert set(loaded) == {"data:,", "/demo/demo.css", "/analytics/tracker.js", "/demo/demo.js"}
    types = {".css": "text/css", ".js": "application/javascript"}
    for url in (u for u in loaded if u.startswith("/")):
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(types[Path(url).suffix]), url
    for label in re.findall(r'<label for="([^"]+)"', r.text):
        assert f'id="{label}"' in r.text  # every label names a real control


def test_an_unknown_demo_file_is_404(client: TestClient) -> None:
    assert client.get("/demo/tracker.py").status_code == 404
    assert client.get("/demo/..%2Fapi%2Fweb.py").status_code == 404


# Our own files; web/vendor holds third-party builds (Chart.js names its home page in a comment,
# and tests/browser/test_dashboard.py blocks and reports any request to another host).
@pytest.mark.parametrize("name", sorted(p.name for p in WEB.iterdir() if p.is_file()))
def test_web_files_reach_for_nothing_outside_the_server(name: str) -> None:
    text = (WEB / name).read_text()
    assert EXTERNAL.findall(text) == []
    assert "@import" not in text and "import(" not in text


def test_web_files_ship_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["clickstats"]
    # setuptools globs do not cross folders: each folder under web/ needs its own pattern.
    for path in WEB.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            folder = path.parent.relative_to(WEB.parent).as_posix()
            assert f"{folder}/*" in patterns, path.relative_to(WEB.parent)
