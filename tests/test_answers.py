"""Every read endpoint answers as recorded (tests/answers/record.py) on both backends.

The recordings were taken before the read side became a metric registry and a reports
package; an answer that changes here changed for a user. Floats compare to 1e-12 (relative):
DuckDB sums doubles in parallel, in an order that can move the last bit between runs.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from tests.answers.record import BACKENDS, HERE, READS, answers


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_same_detects_a_change() -> None:
    assert same({"a": [1, 0.1 + 0.2]}, {"a": [1, 0.3]})
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})  # key order is part of the answer
    assert not same({"a": 1}, {"a": 1.0})
    assert not same({"a": 0.30001}, {"a": 0.3})


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_answer_is_as_recorded(backend: str) -> None:
    recorded = json.loads((HERE / f"{backend}.json").read_text())
    assert list(recorded) == READS
    now = answers(backend)
    for path in READS:
        old, new = recorded[path], now[path]
        assert new["status"] == old["status"], path
        if new["body"] != old["body"]:  # byte for byte, or equal but for a float's last bits
            assert same(json.loads(new["body"]), json.loads(old["body"])), (
                f"{path}\nrecorded: {old['body'][:2000]}\nnow:      {new['body'][:2000]}"
            )
