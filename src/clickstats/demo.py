"""The original design's five demos, against the embedded store or a running server.

clickstats demo                       # a throwaway embedded store
clickstats demo --store duckdb://x    # that store (the demo's events stay in it)
clickstats demo --server URL          # a running server, over HTTP
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from clickstats.client import ClickStatsClient
from clickstats.experiments import ExperimentManager
from clickstats.store import open_store
from clickstats.tracking import ClickTrackingService

QUERIES = ["running shoes", "rain jacket", "backpack", "headphones", "tent", "water bottle"]


class Target(Protocol):
    def log_impression(self, **fields: Any) -> str: ...
    def log_click(self, **fields: Any) -> None: ...
    def report(self, path: str, **params: Any) -> dict[str, Any]: ...


class EmbeddedTarget:
    """The Python API on a store in this process."""

    def __init__(self, tracker: ClickTrackingService) -> None:
        self.tracker = tracker
        self._reports: dict[str, Callable[..., Any]] = {
            "/analytics/ctr": tracker.get_ctr,
            "/analytics/rank-metrics": tracker.get_rank_metrics,
            "/analytics/response-time": tracker.get_response_time_metrics,
            "/analytics/variants-comparison": tracker.get_variant_comparison,
        }

    def log_impression(self, **fields: Any) -> str:
        return str(self.tracker.log_impression(**fields).search_id)

    def log_click(self, **fields: Any) -> None:
        self.tracker.log_click(**fields)

    def report(self, path: str, **params: Any) -> dict[str, Any]:
        if path.startswith("/analytics/user/"):
            user = path.removeprefix("/analytics/user/")
            return self.tracker.get_user_summary(user, **params).to_dict()
        result: dict[str, Any] = self._reports[path](**params).to_dict()
        return result


class ServerTarget:
    """The HTTP API of a running server, through the Python client."""

    def __init__(self, client: ClickStatsClient) -> None:
        self.client = client

    def log_impression(self, **fields: Any) -> str:
        return self.client.log_impression(**fields).search_id

    def log_click(self, **fields: Any) -> None:
        self.client.log_click(**fields)

    def report(self, path: str, **params: Any) -> dict[str, Any]:
        self.client.flush()  # reports should include what was just logged
        result: dict[str, Any] = self.client.get(path, **params)
        return result


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 click', '2 clicks', '1 search', '3 searches'."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def basic_tracking(target: Target, console: Console) -> None:
    search_id = target.log_impression(
        user_id="demo-alice", query="running shoes", variant="search_v1",
        results=["sku-101", "sku-102", "sku-103"], results_count=3, response_time_ms=42.0,
    )  # fmt: skip
    target.log_click(
        user_id="demo-alice", product_id="sku-102", rank=2, search_query="running shoes",
        variant="search_v1", search_id=search_id, response_time_ms=42.0,
    )  # fmt: skip
    # /analytics/ctr's `ctr` is clicks / searches (its name is the original design's).
    ctr = target.report("/analytics/ctr", user_id="demo-alice")
    console.print(
        f"Logged one search ([bold]{search_id}[/]) and a click on its 2nd result.\n"
        f"demo-alice: {plural(ctr['total_impressions'], 'search', 'searches')}, "
        f"{plural(ctr['total_clicks'], 'click')}, {_fmt(ctr['ctr'], 2)} clicks per search"
    )


def simulate_traffic(target: Target, *, users: int = 60, seed: int = 7) -> None:
    """Deterministic traffic in which search_v2 ranks better: more clicks, nearer the top."""
    rng = random.Random(seed)
    experiments = ExperimentManager(None)
    click_rate = {"search_v1": 0.45, "search_v2": 0.6}
    top_bias = {"search_v1": 0.35, "search_v2": 0.55}
    for n in range(users):
        user = f"demo-user-{n:03d}"
        variant = experiments.assign_variant(user)
        for _ in range(rng.randint(2, 8)):
            query = rng.choice(QUERIES)
            latency = rng.lognormvariate(3.6 if variant == "search_v1" else 3.7, 0.35)
            search_id = target.log_impression(
                user_id=user, query=query, variant=variant, results_count=10,
                response_time_ms=round(latency, 2),
            )  # fmt: skip
            if rng.random() < click_rate[variant]:
                rank = 1
                while rank < 10 and rng.random() > top_bias[variant]:
                    rank += 1
                target.log_click(
                    user_id=user, product_id=f"sku-{rng.randint(1, 500)}", rank=rank,
                    search_query=query, variant=variant, search_id=search_id,
                )  # fmt: skip


def variant_comparison(target: Target, console: Console) -> None:
    report = target.report("/analytics/variants-comparison")
    table = Table(
        "variant", "searches", "clicks", "clicks per search", "avg rank", "avg ms", "p95 ms",
        caption="clicks per search: clicks / searches (the API's `ctr` field)",
    )  # fmt: skip
    for name, v in report["variants"].items():
        table.add_row(
            name, str(v["impressions"]), str(v["clicks"]), _fmt(v["ctr"], 2),
            _fmt(v["avg_rank"], 2), _fmt(v["avg_response_ms"], 1), _fmt(v["p95_response_ms"], 1),
        )  # fmt: skip
    console.print(table)
    # `leader` is the most clicks per search; `winner` is the experiment's decision, made on the
    # users' search CTR with a confidence interval: with this little traffic, often none yet.
    # (A server from before `leader` existed named the most clicks per search `winner`.)
    leader = report.get("leader", report["winner"]) or "none (no data or a tie)"
    console.print(f"Most clicks per search: [bold]{leader}[/]")
    stats = report.get("stats") or {}
    if stats.get("summary"):
        console.print(f"The experiment's verdict: {stats['summary']}", soft_wrap=True)


def rank_analysis(target: Target, console: Console) -> None:
    report = target.report("/analytics/rank-metrics")
    console.print(
        f"{report['total_clicks']} clicks; average rank {_fmt(report['avg_rank'], 2)}, "
        f"median {_fmt(report['median_rank'], 1)}, from {report['min_rank']} to {report['max_rank']}"
    )
    most = max(report["clicks_by_rank"].values(), default=1)
    for rank, clicks in report["clicks_by_rank"].items():
        console.print(f"  rank {rank:>3} {'█' * max(1, round(40 * clicks / most))} {clicks}")


def response_time_analysis(target: Target, console: Console) -> None:
    table = Table("variant", "searches", "avg ms", "min ms", "max ms", "p95 ms")
    for variant in (None, "search_v1", "search_v2"):
        r = target.report("/analytics/response-time", variant=variant)
        table.add_row(
            variant or "all", str(r["count"]), _fmt(r["avg_ms"], 1), _fmt(r["min_ms"], 1),
            _fmt(r["max_ms"], 1), _fmt(r["p95_ms"], 1),
        )  # fmt: skip
    console.print(table)


def user_summary(target: Target, console: Console) -> None:
    s = target.report("/analytics/user/demo-user-001")
    console.print(
        f"demo-user-001: {plural(s['impressions'], 'search', 'searches')}, "
        f"{plural(s['clicks'], 'click')}, {_fmt(s['ctr'], 2)} clicks per search, "
        f"average rank {_fmt(s['avg_rank'], 2)}, variants {', '.join(s['by_variant']) or '—'}, "
        f"p95 {_fmt(s['response_time']['p95_ms'], 1)} ms, first seen {s['first_seen']}"
    )


DEMOS: list[tuple[str, Callable[[Target, Console], None]]] = [
    ("1. Basic click tracking", basic_tracking),
    ("2. Variant comparison (search_v1 vs search_v2)", variant_comparison),
    ("3. Rank analysis", rank_analysis),
    ("4. Response-time analysis", response_time_analysis),
    ("5. User summary", user_summary),
]


def run(target: Target, console: Console) -> None:
    for number, (title, demo) in enumerate(DEMOS):
        if number == 1:
            simulate_traffic(target)
        console.print(Panel.fit(title, style="bold cyan"))
        demo(target, console)
        console.print()


def main(
    store: str | None = None, server: str | None = None, console: Console | None = None
) -> None:
    console = console or Console()
    if server is not None:
        with ClickStatsClient(server) as client:
            run(ServerTarget(client), console)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = store or f"duckdb://{Path(tmp) / 'demo.duckdb'}"
        with ClickTrackingService(open_store(url)) as tracker:
            run(EmbeddedTarget(tracker), console)
