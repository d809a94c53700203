"""Judgments against the simulator's true relevance (scripts/validate_judgments.py, fast form):
the simulator's rankings, click model and user population, with clicks drawn as counts instead
of events, so that 100,000 searches take seconds. The doc's table comes from the full script,
through the store; this form agrees with it to about 0.01."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "validate_judgments.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate_judgments", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_judgments_beat_raw_ctr_with_enough_clicks(script: ModuleType) -> None:
    v = script.validate(script.drawn_counts(seed=1, searches=100_000))
    assert v.pairs > 5000
    ctr = v.scores["ctr"]
    for name in ("coec", "pbm"):
        judged = v.scores[name]
        assert judged.pooled_tau > ctr.pooled_tau + 0.05, name
        assert judged.pooled_rho > ctr.pooled_rho + 0.05, name
        assert judged.query_tau > ctr.query_tau + 0.05, name


def test_with_few_clicks_raw_ctr_orders_a_query_better(script: ModuleType) -> None:
    # 5,000 searches: most pairs shown low have an expected click or two. Raw CTR keeps the
    # ranker's order (rank multiplies it), which is informative; the judgments take it out and
    # are left with their noise (the doc's "When raw CTR wins").
    v = script.validate(script.drawn_counts(seed=1, searches=5_000))
    assert v.scores["ctr"].query_tau > max(v.scores[n].query_tau for n in ("coec", "pbm"))
