"""Docs that cannot drift: the README's curl examples run, every setting and endpoint is documented."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from clickstats.settings import Settings
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BASE = "http://127.0.0.1:8000"
ENDPOINTS = [
    "/analytics/log-click", "/analytics/log-impression", "/analytics/events", "/analytics/ctr",
    "/analytics/rank-metrics", "/analytics/response-time", "/analytics/user/",
    "/analytics/variants-comparison", "/analytics/reset", "/health",
    "/analytics/overview", "/analytics/queries", "/analytics/log-conversion",
    "/analytics/log-action",
]  # fmt: skip


def curl_examples() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("curl ")]


def test_readme_has_the_two_commands_and_a_curl_for_every_endpoint() -> None:
    assert "make run" in README and "make test" in README
    examples = "\n".join(curl_examples())
    for endpoint in ENDPOINTS:
        assert endpoint in examples, f"README has no curl example for {endpoint}"


def test_readme_curl_examples_work_as_written(live_server: LiveServer) -> None:
    examples = curl_examples()
    assert len(examples) >= len(ENDPOINTS)
    for example in examples:
        # Run exactly what a reader pastes, against the test server, failing on any 4xx/5xx.
        command = example.replace(BASE, live_server.url)
        args = shlex.split(command)
        args[1:1] = ["-sS", "--fail-with-body", "--max-time", "20"]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{example}\n{done.stdout}\n{done.stderr}"
        if "/docs" not in example:
            json.loads(done.stdout)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert f"CLICKSTATS_{name.upper()}" in docs


@pytest.mark.parametrize(
    "doc",
    [
        "CLICK_TRACKING.md",
        "EXPERIMENTS.md",
        "PERFORMANCE.md",
        "DASHBOARD.md",
        "CLI.md",
        "INTEGRATIONS.md",
    ],
)
def test_subsystem_docs_exist_and_are_linked(doc: str) -> None:
    assert (ROOT / "docs" / doc).is_file()
    assert f"docs/{doc}" in README


@pytest.mark.parametrize("command", ["report", "export", "import", "judgments"])
def test_every_option_of_the_data_commands_is_documented(command: str) -> None:
    from clickstats.cli import main

    doc = (ROOT / "docs" / "CLI.md").read_text()
    assert f"clickstats {command}" in doc
    cmd = main.commands[command]
    for param in cmd.params:
        for flag in param.opts:
            if flag.startswith("--") and flag != "--help":
                assert flag in doc, f"docs/CLI.md does not mention {command} {flag}"
