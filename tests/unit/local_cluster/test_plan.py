import pytest

from meshgate.gateway.config_file import load_gateway_config
from meshgate.local_cluster.command import default_config_file, stages
from meshgate.local_cluster.plan import DEMO_SERVICES, ClusterOptions, cluster_plan


def _options(**overrides: object) -> ClusterOptions:
    return ClusterOptions(
        nats_url="nats://127.0.0.1:4222",
        config_file="cluster.toml",
        **overrides,  # type: ignore[arg-type]
    )


def test_the_plan_starts_the_registry_first_and_the_gateways_last() -> None:
    plan = cluster_plan(_options(replicas=3))
    names = [p.name for p in plan]
    assert names[0] == "registry"
    assert names[-3:] == ["gateway-1", "gateway-2", "gateway-3"]
    assert {d.name for d in DEMO_SERVICES} <= set(names)
    assert [stage[0].name for stage in stages(plan)] == [
        "registry",
        "health",
        "gateway-1",
    ]


def test_each_replica_gets_its_own_ports_and_readiness_url() -> None:
    plan = cluster_plan(_options(replicas=2, gateway_port=8100, admin_port=9100))
    gateways = [p for p in plan if p.name.startswith("gateway-")]
    assert [p.url for p in gateways] == [
        "http://127.0.0.1:9100/readyz",
        "http://127.0.0.1:9101/readyz",
    ]
    second = gateways[1].argv
    assert second[second.index("--listen") + 1] == "127.0.0.1:8101"
    assert second[second.index("--replica-id") + 1] == "gateway-2"


def test_every_process_talks_to_the_same_bus() -> None:
    for spec in cluster_plan(_options(prefix="demo")):
        argv = list(spec.argv)
        assert argv[argv.index("--nats") + 1] == "nats://127.0.0.1:4222"
        assert argv[argv.index("--prefix") + 1] == "demo"


def test_without_services_only_the_nodes_start() -> None:
    names = [p.name for p in cluster_plan(_options(services=False, replicas=1))]
    assert names == ["registry", "health", "canary", "gateway-1"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"replicas": 0}, "replicas"), ({"gateway_port": 9090, "admin_port": 9091}, "overlap")],
)
def test_bad_options_are_named(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        _options(**overrides)


def test_the_shipped_cluster_config_loads() -> None:
    config = load_gateway_config(default_config_file())
    assert [r.name for r in config.routes] == ["users", "orders", "products", "payments"]
