"""Starting `meshgate up` on free ports for a system test, shared by the tests
that need a whole local cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port_pair() -> int:
    """A port P with P and P+1 both free now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65000:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two free consecutive ports")


def cluster_env(tmp_path: Path) -> dict[str, str]:
    """The environment of `up` and of every command that must find its NATS."""
    env = {**os.environ, "MESHGATE_STATE_DIR": str(tmp_path / "state")}
    env.pop("MESHGATE_NATS", None)
    return env


def start_cluster(
    tmp_path: Path, gateway_port: int, admin_port: int
) -> tuple[subprocess.Popen[str], list[str]]:
    """`meshgate up` on the given ports, once it says it is up (or has given up
    within 90 s); the lines it printed so far."""
    command = [
        sys.executable, "-m", "meshgate.cli", "up",
        "--gateway-port", str(gateway_port), "--admin-port", str(admin_port),
        "--log-dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    up = subprocess.Popen(
        command,
        cwd=REPO,
        env=cluster_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert up.stdout is not None
    deadline = time.monotonic() + 90
    for line in up.stdout:
        output.append(line)
        if "meshgate is up." in line or time.monotonic() > deadline:
            break
    return up, output
