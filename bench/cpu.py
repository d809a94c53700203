"""Where the CPU went during a load run: the server's event-loop thread, its other threads, wrk.

On a 2-core machine the server and the load generator share the cores, so a throughput
figure means little without knowing which of them ran out of CPU first. Linux only (/proc).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from procs import process_tree

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSample:
    main_s: float  # the server's main threads: uvicorn's event loops, where requests run
    other_s: float  # the other threads: the store's writer, DuckDB's workers, the thread pools
    children_s: float  # processes this one has waited for (wrk, once a run ends)
    machine_s: float  # every busy core of the machine, whoever ran on it


@dataclass(frozen=True)
class CpuUsage:
    """CPU seconds per wall second (1.0 = one core busy) over one load run."""

    server_main: float
    server_other: float
    wrk: float
    others: float  # processes that are not part of the benchmark: noise, if not ~0

    def describe(self) -> str:
        return (
            f"CPU cores: server loop {self.server_main:.2f}, "
            f"server other threads {self.server_other:.2f}, wrk {self.wrk:.2f}, "
            f"other processes {self.others:.2f}"
        )


def _thread_cpu_s(stat_path: Path) -> float:
    # The command name (field 2) may contain spaces; utime and stime follow its ")".
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def _machine_busy_s() -> float:
    # First line of /proc/stat: user nice system idle iowait irq softirq steal ... (ticks).
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) * _TICK_S


def sample(pid: int | None) -> CpuSample:
    """CPU time so far of the server `pid` and of its worker processes (`--workers N`): the
    main threads (each worker's event loop; the owner's supervisor) and the other threads."""
    main = other = 0.0
    for process in process_tree(pid) if pid is not None else []:
        try:
            tasks = list(Path(f"/proc/{process}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                cpu = _thread_cpu_s(task / "stat")
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile (its time is lost, and small)
            if int(task.name) == process:
                main += cpu
            else:
                other += cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(main, other, children.ru_utime + children.ru_stime, _machine_busy_s())


def usage(before: CpuSample, after: CpuSample, wall_s: float) -> CpuUsage:
    main = (after.main_s - before.main_s) / wall_s
    other = (after.other_s - before.other_s) / wall_s
    wrk = (after.children_s - before.children_s) / wall_s
    machine = (after.machine_s - before.machine_s) / wall_s
    return CpuUsage(main, other, wrk, others=max(0.0, machine - main - other - wrk))


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores the machine keeps busy right now (before the benchmark starts)."""
    before = _machine_busy_s()
    time.sleep(seconds)
    return (_machine_busy_s() - before) / seconds


def wait_until_quiet(threshold: float = 0.25, max_wait_s: float = 60) -> float:
    """Wait (a while) for other work on the machine to end: it would share the 2 cores with
    the servers under test. Returns the last busy-cores reading."""
    deadline = time.monotonic() + max_wait_s
    busy = busy_cores()
    while busy > threshold and time.monotonic() < deadline:
        busy = busy_cores(2.0)
    return busy
