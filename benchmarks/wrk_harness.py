"""What the HTTP benchmarks share: free ports, waiting for a server, the CPU
time and memory of a process tree from /proc, and running wrk pinned to a
core and reading its report (req/s, latency percentiles, errors).

Imported by the scripts beside it (`http_core.py`, `gateway.py`), which run
with this directory first on `sys.path`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's workers under its master)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, ()))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of `pids`, from /proc/PID/stat."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime, fields 14 and 15 of proc(5), counted after the ")"
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def core_busy_seconds(core: int) -> float:
    """Seconds core `core` has spent running processes (user, nice, system)
    or taken by the hypervisor (steal), from /proc/stat. Interrupt time is
    left out: loopback traffic is handled there, and it is ours."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                # user nice system idle iowait irq softirq steal ...
                user, nice, system, _, _, _, _, steal = (int(n) for n in line.split()[1:9])
                return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")
    raise ValueError(f"no core {core} in /proc/stat")


def rss_kib(pids: Iterable[int]) -> int:
    """The summed VmRSS of `pids`, in KiB."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms) and every kind of
    error it counts (socket errors by kind, and non-2xx/3xx answers)."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    output: str

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """The numbers of wrk's report (run with ``--latency`` for the percentiles)."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"wrk gave no Requests/sec:\n{output}")
    percentiles = {
        int(m.group(1)): _latency_ms(m.group(2))
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = 0 if sockets is None else sum(int(n) for n in sockets.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles.get(50, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        socket_errors=socket_errors,
        non_2xx=0 if non_2xx is None else int(non_2xx.group(1)),
        output=output,
    )


def run_wrk(
    url: str, *, connections: int, duration: float, core: int | None = 0, threads: int = 1
) -> WrkResult:
    """wrk against `url` (pinned to `core` when given), with ``--latency``."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        url,
    ]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    return parse_wrk(output)
