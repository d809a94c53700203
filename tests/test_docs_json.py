"""Docs that cannot drift: every JSON answer printed in README.md and docs/*.md is the real one.

A ```json block right after a ```bash block of curl lines is the answer to the last of those
lines: each doc's curl lines run in order against a fresh `clickstats serve`, and the answer
must have the same keys and types at every depth, and the same values except where they cannot
be the same (a generated id, a timestamp, a measured time). Every other ```json block is listed
below with what it is, so that a new block cannot go unchecked. The answers of README.md and
the docs written with it are also laid out one way (`layout`), which says what to paste.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parent.parent
BASE = "http://127.0.0.1:8000"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Docs whose answers are laid out by `layout` (the others keep their authors' layout).
LAID_OUT = {"README.md", "SEARCH.md"}
#: A value that differs from run to run: a generated id, a timestamp, a measured duration.
GENERATED = re.compile(r"^[0-9a-f]{32}$|^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MEASURED = {"took_ms"}


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    lang: str
    text: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    return [
        Block(path.name, text[: m.start()].count("\n") + 1, m.group(1), m.group(2))
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)
    ]


def curls(block: Block) -> list[str]:
    return [line for line in block.text.splitlines() if line.startswith("curl ")]


def answers(path: Path) -> list[tuple[Block, Block]]:
    """(json block, the bash block of curl lines before it) for every answer in `path`."""
    found = blocks(path)
    return [
        (b, before)
        for before, b in itertools.pairwise(found)
        if b.lang == "json" and before.lang == "bash" and curls(before)
    ]


#: The other JSON blocks, each with what it is and how this file checks it.
OTHER_BLOCKS = {
    ("CLICK_TRACKING.md", "events"): "a batch request; its answer is the next block",
    ("CLICK_TRACKING.md", "accepted"): "the answer to that batch (test_batch_example)",
    ("CLICK_TRACKING.md", "detail"): "a validation error (test_validation_error_example)",
    ("EXPERIMENTS.md", "experiments"): "the experiments file (test_experiments_file_example)",
    ("STATISTICS.md", "experiment"): "ExperimentResult.to_dict() (test_statistics_result_example)",
    ("TRACKER.md", "type"): "an event the tracker sends (test_tracker_event_example)",
    ("CLICK_TRACKING.md", "type"): "a conversion (test_conversion_example)",
    ("INTEGRATIONS.md", "status"): "an Algolia 422 (tests/integrations/test_algolia.py)",
}


def first_key(block: Block) -> str:
    value = json.loads(block.text)
    return next(iter(value)) if isinstance(value, dict) and value else ""


def test_every_json_block_is_an_answer_or_listed() -> None:
    for path in DOCS:
        paired = {b.line for b, _ in answers(path)}
        for b in blocks(path):
            if b.lang != "json":
                continue
            json.loads(b.text)  # every block is JSON
            if b.line not in paired:
                assert (b.doc, first_key(b)) in OTHER_BLOCKS, (
                    f"{b.doc}:{b.line}: a JSON block that is neither the answer to the curl "
                    "line above it nor listed in OTHER_BLOCKS"
                )


# -- comparing -----------------------------------------------------------------------------------
def differences(doc: Any, real: Any, where: str = "$", *, values: bool = True) -> list[str]:
    """Where `doc` and `real` differ: keys (in order, with `values`), types (int and float
    apart), and with `values` every value that is not generated or measured."""
    if type(doc) is not type(real):
        return [f"{where}: {type(doc).__name__} {doc!r} in the doc, {type(real).__name__} {real!r}"]
    if isinstance(doc, dict):
        out = []
        if (list(doc) if values else set(doc)) != (list(real) if values else set(real)):
            missing, extra = set(real) - set(doc), set(doc) - set(real)
            out.append(f"{where}: keys {list(doc)} in the doc, {list(real)} really"
                       f" (missing {sorted(missing)}, not there {sorted(extra)})")  # fmt: skip
        for key in doc.keys() & real.keys():
            measured = not values or key in MEASURED
            out += differences(doc[key], real[key], f"{where}.{key}", values=not measured)
        return out
    if isinstance(doc, list):
        if len(doc) != len(real):
            return [f"{where}: {len(doc)} items in the doc, {len(real)} really"]
        return [
            d for i, (a, b) in enumerate(zip(doc, real, strict=True))
            for d in differences(a, b, f"{where}[{i}]", values=values)
        ]  # fmt: skip
    if values and doc != real and not (isinstance(doc, str) and GENERATED.match(doc)):
        return [f"{where}: {doc!r} in the doc, {real!r} really"]
    return []


def layout(value: Any, level: int = 0, prefix: int = 0, width: int = 130) -> str:
    """The layout of the answers in the docs: JSON on one line where it fits in `width`
    columns, else one member per line (indented by two spaces), and so on inside."""
    line = json.dumps(value, ensure_ascii=False)
    if 2 * level + prefix + len(line) <= width or not isinstance(value, dict | list) or not value:
        return line
    inner = "  " * (level + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k)}: {layout(v, level + 1, len(json.dumps(k)) + 2, width)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    items = [inner + layout(v, level + 1, 0, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"


# -- running the docs' curl lines ---------------------------------------------------------------
def serve(directory: Path) -> LiveServer:
    """`clickstats serve` on an empty store, working in `directory` (its data/experiments.json
    is not the repository's)."""
    server = LiveServer(directory / "docs.duckdb")
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return server.start()
    finally:
        os.chdir(cwd)


def run_curl(line: str, server: LiveServer) -> str:
    args = shlex.split(line.replace(BASE, server.url))
    args[1:1] = ["-sS", "--fail-with-body", "--max-time", "30"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    return done.stdout


WITH_ANSWERS = [path for path in DOCS if answers(path)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[LiveServer]:
    server = serve(tmp_path)
    yield server
    server.stop()


def real_answers(path: Path, server: LiveServer) -> list[tuple[Block, Block, Any]]:
    """Run the doc's curl lines in order, as a reader runs them: (answer block, its request
    block, the real answer) for each printed answer."""
    outputs: dict[int, str] = {}
    for b in blocks(path):
        if b.lang == "bash":
            for line in curls(b):
                outputs[b.line] = run_curl(line, server)  # the block's last line answers
    return [(b, request, json.loads(outputs[request.line])) for b, request in answers(path)]


@pytest.mark.parametrize("path", WITH_ANSWERS, ids=[p.name for p in WITH_ANSWERS])
def test_every_printed_answer_is_the_real_one(path: Path, served: LiveServer) -> None:
    problems = []
    for b, request, real in real_answers(path, served):
        found = differences(json.loads(b.text), real)
        if path.name in LAID_OUT and b.text.rstrip("\n") != layout(json.loads(b.text)):
            found.append("laid out otherwise than `layout` lays it out")
        if found:
            problems.append(
                f"{b.doc}:{b.line} ({curls(request)[-1][:80]}...):\n  "
                + "\n  ".join(found)
                + f"\n  the real answer, laid out:\n{layout(real)}"
            )
    assert not problems, (
        "\n\n".join(problems) + "\n\n(python -m tests.test_docs_json DOC.md writes the real "
        "answers into a doc of LAID_OUT)"
    )


def block(doc: str, key: str) -> Any:
    return next(
        json.loads(b.text)
        for b in blocks(ROOT / ("README.md" if doc == "README.md" else f"docs/{doc}"))
        if b.lang == "json" and first_key(b) == key
    )


def test_batch_example(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from clickstats.app import create_app
    from clickstats.settings import Settings

    settings = Settings(store=f"duckdb://{tmp_path}/b.duckdb", experiments=str(tmp_path / "e.json"))
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/analytics/events",
            json=block("CLICK_TRACKING.md", "events"),
            headers={"X-User-ID": "user-42"},
        )
        assert answer.status_code == 200
        assert differences(block("CLICK_TRACKING.md", "accepted"), answer.json()) == []
        invalid = client.post(
            "/analytics/log-click", json={"product_id": "sku-1", "rank": 0, "extra": 1}
        )
        assert invalid.status_code == 422
        assert differences(block("CLICK_TRACKING.md", "detail"), invalid.json()) == []


def test_experiments_file_example(tmp_path: Path) -> None:
    from clickstats.experiments import ExperimentManager

    ExperimentManager(tmp_path / "experiments.json")  # writes the default file
    real = json.loads((tmp_path / "experiments.json").read_text())
    doc = block("EXPERIMENTS.md", "experiments")
    abridged = [d for d in differences(doc, real) if "'...' in the doc" not in d]
    assert abridged == []


def test_statistics_result_example() -> None:
    """The shape of ExperimentResult.to_dict(), on a summary of search CTR alone (the doc's
    numbers are an illustration: keys and types are compared, not values)."""
    from clickstats.stats.analysis import analyze
    from clickstats.stats.outliers import apply
    from clickstats.stats.summary import ExperimentSummary, RatioSummary, VariantSummary

    def arm(name: str, users: int, clicked: int) -> VariantSummary:
        x = [1.0 + n % 3 if n < clicked else 0.0 for n in range(users)]  # searches with a click
        ctr = RatioSummary.from_values(x, [4.0] * users)
        return VariantSummary(name, users, {"search_ctr": ctr})

    summary = ExperimentSummary(  # search_v2 significantly better, as in the doc
        (arm("search_v1", 2000, 800), arm("search_v2", 2009, 1000)),
        {"search_v1": 1.0, "search_v2": 1.0},
        experiment="search_ranking",
        outliers=apply({"search_v1": {4: 2000}, "search_v2": {4: 2009, 2400: 1}}),
    )
    real = analyze(summary).to_dict()
    assert differences(block("STATISTICS.md", "experiment"), real, values=False) == []


def test_tracker_event_example() -> None:
    from clickstats.events import parse_events

    good, rejected = parse_events([block("TRACKER.md", "type")], default_user="anonymous")
    assert len(good) == 1 and rejected == []


def test_conversion_example() -> None:
    from clickstats.events import ConversionEvent, parse_events

    good, rejected = parse_events([block("CLICK_TRACKING.md", "type")], default_user="anonymous")
    assert rejected == [] and len(good) == 1
    (_, event) = good[0]
    assert isinstance(event, ConversionEvent)
    assert event.value == 43.3 and event.currency == "EUR"  # as the doc works it out


if __name__ == "__main__":  # python -m tests.test_docs_json README.md: print the real answers in
    import sys
    import tempfile

    for name in sys.argv[1:]:
        doc = ROOT / name if (ROOT / name).exists() else ROOT / "docs" / name
        with tempfile.TemporaryDirectory() as tmp:
            live = serve(Path(tmp))
            try:
                text = doc.read_text()
                for b, _, real in reversed(real_answers(doc, live)):
                    lines = text.split("\n")
                    body = b.text.rstrip("\n").split("\n")
                    lines[b.line : b.line + len(body)] = layout(real).split("\n")
                    text = "\n".join(lines)
                doc.write_text(text)
            finally:
                live.stop()
