"""Servers under test: one process at a time, started as a user would, stopped by its pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

BENCH_DIR = Path(__file__).resolve().parent
BIN_DIR = Path(sys.executable).parent
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: Seconds between two readings of a server's memory.
RSS_EVERY_S = 0.1


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (a server's workers), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may contain spaces; the parent's pid follows ")".
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += [child for child, parent in parents.items() if parent == current]
    return tree


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, summed (shared pages count once per process)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


class PeakMemory:
    """The largest summed RSS of a process tree, read every RSS_EVERY_S in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="rss", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        tree, listed = [self.pid], 0.0
        while not self._stop.is_set():
            if time.monotonic() - listed > 1.0:  # workers appear and go: look again each second
                tree, listed = process_tree(self.pid), time.monotonic()
            self.peak_bytes = max(self.peak_bytes, rss_bytes(tree))
            self._stop.wait(RSS_EVERY_S)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server subprocess; a context manager that waits until it answers and stops it after.

    `ready_path` is a GET that must answer 200 before the server counts as up (the real
    server's /health opens the store first); without it, an accepted TCP connection is enough.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        cwd: Path,
        ready_path: str | None = None,
    ) -> None:
        self.name = name
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [*args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.log_path = log_path
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self.memory: PeakMemory | None = None
        #: the largest memory of the server's processes, summed, from start to stop
        self.peak_rss_bytes = 0

    @classmethod
    def real(cls, store_path: Path, log_path: Path, cwd: Path, workers: int = 1) -> Server:
        args = [str(BIN_DIR / "clickstats"), "serve", "--store", f"duckdb://{store_path}"]
        # wrk sends everything from one address: a rate limit it never reaches keeps the
        # limiter's cost in the figures without refusing any request
        args += ["--rate-limit", "1e9", "--workers", str(workers)]
        return cls("clickstats", args, log_path, cwd, ready_path="/health")

    @classmethod
    def bare(cls, log_path: Path, cwd: Path, workers: int = 1) -> Server:
        args = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--workers", str(workers)]
        return cls("bare", args, log_path, cwd)

    def __enter__(self) -> Server:
        # The user's CLICKSTATS_* settings must not leak into the server under test.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTATS_")}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # Run in a scratch directory: files the server creates at relative default paths
        # (data/experiments.json) must not land in the checkout.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=env, stdout=log, stderr=log)
        self.memory = PeakMemory(self.proc.pid)
        try:
            self._wait_ready(timeout_s=300)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if self.ready_path is None:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                elif httpx.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    return
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} server did not start in {timeout_s:.0f} s")

    def stop(self) -> None:
        """Ctrl+C, as a user stops it (the real server then checkpoints its store)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.memory is not None:
                self.peak_rss_bytes = self.memory.stop()
