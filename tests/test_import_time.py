"""`clickstats --help` is quick: the CLI imports no store, server or statistics library.

Every command's implementation imports what it needs when it runs (issue 13, item 5). What
`import clickstats.cli` still loads, and why: click; pydantic and pydantic-settings
(clickstats.settings gives the option defaults and the default store).
"""

from __future__ import annotations

import subprocess
import sys
import time

#: Modules that `import clickstats.cli` must not load.
HEAVY = (
    "scipy",
    "statsmodels",
    "duckdb",
    "pymongo",
    "pyarrow",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "rich",
    "numpy",
    "tantivy",
)
HELP_SECONDS = 1.0


def test_help_is_quick() -> None:
    command = [sys.executable, "-m", "clickstats", "--help"]
    subprocess.run(command, check=True, capture_output=True, timeout=60)  # warm the caches
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    # The best of five: what the command costs, without the waits of a machine busy with
    # other work (the test suite's own servers and browsers run beside it).
    assert min(times) < HELP_SECONDS, times


def test_cli_imports_nothing_heavy() -> None:
    code = (
        f"import sys, clickstats.cli\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == []


def test_public_names_import_on_demand() -> None:
    code = (
        "import sys, clickstats\n"
        "assert 'clickstats.tracking' not in sys.modules\n"
        "from clickstats import ClickEvent, ClickSource, ClickTrackingService, SearchImpression\n"
        "from clickstats import __version__, get_click_tracker\n"
        "import clickstats.events, clickstats.tracking\n"
        "assert ClickTrackingService is clickstats.tracking.ClickTrackingService\n"
        "assert ClickEvent is clickstats.events.ClickEvent\n"
        "assert sorted(clickstats.__all__) == sorted(n for n in clickstats.__all__ "
        "if hasattr(clickstats, n))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=60)
