"""The dashboard's pages and files are served from the package, whole, with fitting headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.metrics import METRICS
from clickstats.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "clickstats" / "web"
PAGES = [
    "/",
    "/dashboard",
    "/dashboard/queries",
    "/dashboard/experiments",
    "/dashboard/users/sim1-00001",
    "/dashboard/users/a%20user%20%C3%A9",
]
#: An absolute or protocol-relative URL to another host (a CDN, a font, an analytics script).
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.I)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # No `with`: these routes need no store, so the app's lifespan is not run.
    tmp = tmp_path_factory.mktemp("dashboard")
    settings = Settings(store=f"duckdb://{tmp}/x.duckdb", experiments=str(tmp / "e.json"))
    yield TestClient(create_app(settings))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_the_same_shell(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.content == (WEB / "dashboard.html").read_bytes()


def test_the_shell_loads_only_files_the_server_has(client: TestClient) -> None:
    html = client.get("/").text
    loaded = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert {"data:,", "/dashboard/assets/dashboard.css", "/dashboard/assets/dashboard.js"} <= loaded
    types = {".css": "text/css", ".js": "application/javascript", ".md": "text/plain"}
    for url in (u for u in loaded if u.startswith("/dashboard/assets/")):
        r = client.get(url)
        assert r.status_code == 200, url
        suffix = Path(url.split("?")[0]).suffix
        assert r.headers["content-type"].startswith(types[suffix]), url
    for label in re.findall(r'<label for="([^"]+)"', html):
        assert f'id="{label}"' in html  # every label names a real control
    # The script says which version it is; the URL (for caches) and the docs name the same one.
    chart = client.get("/dashboard/assets/chart.umd.min.js").text
    version = re.match(r"/\*!\n \* Chart\.js v(4\.\d+\.\d+)\n", chart)
    assert version is not None
    assert f"/dashboard/assets/chart.umd.min.js?v={version[1]}" in loaded
    assert f"Chart.js {version[1]}" in html  # the footer
    assert f"**{version[1]}**" in (ROOT / "docs" / "DASHBOARD.md").read_text()


def test_chart_js_is_cached_for_long_and_our_files_revalidate(client: TestClient) -> None:
    chart = client.get("/dashboard/assets/chart.umd.min.js")
    assert chart.headers["cache-control"] == "public, max-age=604800"
    assert chart.content == (WEB / "vendor" / "chart.umd.min.js").read_bytes()
    for name in ("dashboard.js", "dashboard.css"):
        r = client.get(f"/dashboard/assets/{name}")
        assert r.headers["cache-control"] == "no-cache"
        assert r.content == (WEB / name).read_bytes()
        again = client.get(
            f"/dashboard/assets/{name}", headers={"If-None-Match": r.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "name", ["nope.js", "tracker.js", "demo.html", "..%2Fapi%2Fweb.py", "vendor%2Fchart.umd.min.js"]
)
def test_an_unknown_asset_is_404_naming_it(client: TestClient, name: str) -> None:
    r = client.get(f"/dashboard/assets/{name}")
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert detail.startswith("no dashboard file ") and "dashboard.js" in detail


def test_an_unknown_dashboard_page_is_404(client: TestClient) -> None:
    assert client.get("/dashboard/nope").status_code == 404
    assert client.get("/dashboard/users/").status_code == 404


@pytest.mark.parametrize("name", ["dashboard.html", "dashboard.js", "dashboard.css"])
def test_dashboard_files_reach_for_nothing_outside_the_server(name: str) -> None:
    text = (WEB / name).read_text()
    assert EXTERNAL.findall(text) == []
    assert "@import" not in text and "import(" not in text


def test_the_licence_ships_next_to_chart_js() -> None:
    licence = (WEB / "vendor" / "chart.js.LICENSE.md").read_text()
    assert "The MIT License" in licence and "Chart.js Contributors" in licence


def test_the_dashboard_reads_the_metric_registry_from_the_api() -> None:
    """dashboard.js keeps no copy of the registry: its labels and hover definitions, and the
    metrics the overview shows, come from /analytics/metrics (tests/api/test_metrics.py)."""
    script = (WEB / "dashboard.js").read_text()
    assert "METRICS-BEGIN" not in script
    assert '"/analytics/metrics"' in script
    for metric in METRICS:  # no metric's label is written into the script
        assert f'"label": "{METRICS[metric].label}"' not in script
