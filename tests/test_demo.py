"""The five demos run on the embedded store and against a server, with the same figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.console import Console

from clickstats.demo import main
from tests.conftest import LiveServer

TITLES = [
    "Basic click tracking",
    "Variant comparison",
    "Rank analysis",
    "Response-time",
    "User summary",
]


def run_demo(**where: str) -> str:
    console = Console(record=True, width=120)
    main(console=console, **where)
    return console.export_text()


def test_demo_embedded_and_over_http_agree(live_server: LiveServer) -> None:
    embedded = run_demo()
    for title in TITLES:
        assert title in embedded
    assert "Most clicks per search: search_v2" in embedded
    over_http = run_demo(server=live_server.url)

    # Same deterministic traffic, so demos 2 to 4 print the same tables. (1 shows a generated
    # search id and 5 a timestamp.)
    def tables(text: str) -> str:
        return text.split("2. Variant comparison")[1].split("5. User summary")[0]

    assert tables(embedded) == tables(over_http)


def test_demo_script_runs(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "demo_click_tracking.py"
    store = f"duckdb://{tmp_path}/demo.duckdb"
    done = subprocess.run(
        [sys.executable, str(script), "--store", store], capture_output=True, text=True, check=True
    )
    assert "5. User summary" in done.stdout
    assert (tmp_path / "demo.duckdb").exists()
