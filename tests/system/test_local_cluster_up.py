"""`meshgate up` as a user runs it: the whole cluster starts, a request goes
through a gateway replica to user-service, `meshgate status` (finding the
cluster's NATS by itself) shows both replicas, and Ctrl-C stops every process
it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.system.cluster_launcher import REPO, cluster_env, free_port_pair, start_cluster

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("interrupts", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_meshgate_up_serves_through_a_replica_and_stops_everything(
    tmp_path: Path, interrupts: int
) -> None:
    gateway_port, admin_port = free_port_pair(), free_port_pair()
    env = cluster_env(tmp_path)
    up, output = start_cluster(tmp_path, gateway_port, admin_port)
    try:
        assert any("meshgate is up." in line for line in output), "".join(output)
        reply = httpx.get(f"http://127.0.0.1:{gateway_port}/api/users/1", timeout=10)
        assert reply.status_code == 200
        assert reply.json()["service"] == "user-service"
        second = httpx.get(
            f"http://127.0.0.1:{gateway_port + 1}/api/users/1",
            headers={"X-API-Version": "v2"},
            timeout=10,
        )
        assert second.json()["version"] == "2.0.0"
        status = subprocess.run(
            [sys.executable, "-m", "meshgate.cli", "status"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert "gateway replicas (2)" in status.stdout
        assert "gateway-1" in status.stdout
        assert "gateway-2" in status.stdout
        assert "user-service-v2-1" in status.stdout
    finally:
        for _ in range(interrupts):
            # a second Ctrl-C while stopping must kill what is left, not the launcher
            up.send_signal(signal.SIGINT)
            time.sleep(0.2)
        try:
            rest, _ = up.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()
            rest, _ = up.communicate()
        output.append(rest or "")
    text = "".join(output)
    assert up.returncode == 0, text
    pids = [int(pid) for pid in re.findall(r"pid (\d+)", text)]
    assert len(pids) >= 12
    assert [pid for pid in pids if _alive(pid)] == []
    assert not (tmp_path / "state" / "local-cluster.json").exists()
