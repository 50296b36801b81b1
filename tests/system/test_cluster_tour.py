"""`meshgate tour` against a real `meshgate up`: the version-routing,
traffic-management and canary-deployment scenarios pass and say so."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system.cluster_launcher import REPO, cluster_env, free_port_pair, start_cluster

pytestmark = pytest.mark.slow

EXPECTED = {
    "version-routing": ["X-API-Version: v2 → 2.0.0 ×5", "X-API-Version: v9 → 400"],
    "traffic-management": ["copies", "503 circuit_open", "serves payments again", "429 ×"],
    "canary-deployment": ["acted_by controller → paused", "rolled-back: stable 1.0.0 100%"],
}


def test_tour_plays_the_scenarios_against_a_running_cluster(tmp_path: Path) -> None:
    gateway_port, admin_port = free_port_pair(), free_port_pair()
    up, output = start_cluster(tmp_path, gateway_port, admin_port)
    try:
        assert any("meshgate is up." in line for line in output), "".join(output)
        for scenario, lines in EXPECTED.items():
            tour = subprocess.run(
                [
                    sys.executable, "-m", "meshgate.cli", "tour", scenario,
                    "--gateway", f"http://127.0.0.1:{gateway_port}",
                    "--gateway", f"http://127.0.0.1:{gateway_port + 1}",
                    "--admin", f"http://127.0.0.1:{admin_port}",
                ],
                cwd=REPO, env=cluster_env(tmp_path), capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            assert tour.returncode == 0, tour.stdout + tour.stderr
            for line in lines:
                assert line in tour.stdout, tour.stdout
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()
