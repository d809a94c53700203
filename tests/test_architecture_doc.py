"""docs/ARCHITECTURE.md names every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "clickstats"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def modules() -> list[str]:
    """Every module as its path under src/clickstats ("store/duckdb/queries.py"); a package's
    __init__.py when it holds code (more than a docstring and a few names)."""
    return sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent == PACKAGE or len(p.read_text().splitlines()) > 12
    )


def test_every_module_is_in_the_architecture_doc() -> None:
    missing = [m for m in modules() if f"`{m}`" not in DOC]
    assert missing == [], f"docs/ARCHITECTURE.md does not name: {', '.join(missing)}"


def test_every_module_the_doc_names_exists() -> None:
    named = {n for n in re.findall(r"`([\w/]+\.py)`", DOC) if not n.startswith("tests/")}
    assert sorted(n for n in named if not (PACKAGE / n).exists()) == []


def test_the_recipes_are_there() -> None:
    for recipe in ("Add a metric", "Add a backend", "Add an endpoint", "Add a report"):
        assert f"### {recipe}" in DOC
