"""`meshgate events` lines and the subjects each kind of event travels on."""

from __future__ import annotations

import argparse

import pytest

from meshgate.bus.event_lines import event_line
from meshgate.bus.event_stream import kind_subjects
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import CanaryEvent, CircuitEvent, ConfigEvent, RegistryEvent
from meshgate.bus.subjects import Subjects
from meshgate.events_command import configure

AT = 1700000000.5
WHEN = "2023-11-14T22:13:20.500Z"


def test_a_circuit_line_says_the_move_the_replica_and_when_it_will_probe() -> None:
    event = CircuitEvent(
        route="pay",
        from_state="half-open",
        to_state="open",
        replica="gw-2",
        reset_deadline=AT + 60,
        generation=6,
        reopens=2,
        at=AT,
    )
    assert event_line(event) == (
        f"{WHEN}  circuit   pay  half-open -> open on gw-2, probe from "
        "2023-11-14T22:14:20.500Z, reopened 2x (generation 6)"
    )


def test_a_registry_line_names_the_instance_and_a_status_change() -> None:
    instance = ServiceInstance(
        id="user-1", name="user-service", host="10.0.0.5", port=3001, status=InstanceStatus.DOWN
    )
    assert event_line(RegistryEvent(kind="status", instance=instance, at=AT)) == (
        f"{WHEN}  registry  user-service  status user-1 at 10.0.0.5:3001 now DOWN"
    )


def test_a_canary_line_gives_the_weights_and_the_reason() -> None:
    event = CanaryEvent(
        route="orders",
        kind="rollback",
        state="rolled-back",
        stable_version="1.0.0",
        canary_version="1.1.0",
        stable_weight=100.0,
        canary_weight=0.0,
        step=1,
        reason="error rate 12% over 5%",
        at=AT,
    )
    assert event_line(event) == (
        f"{WHEN}  canary    orders  rollback (rolled-back): stable 1.0.0 100% / canary 1.1.0 0%"
        ": error rate 12% over 5%"
    )


def test_a_config_line_gives_where_an_added_route_goes() -> None:
    event = ConfigEvent(
        kind="added",
        route="orders",
        config={"path": "/orders/**", "upstreams": ["10.0.0.7:80", "10.0.0.8:80"]},
        at=AT,
    )
    assert (
        event_line(event)
        == f"{WHEN}  config    orders  added: /orders/** -> 10.0.0.7:80, 10.0.0.8:80"
    )


def test_kinds_map_to_their_subjects_and_unknown_kinds_are_refused() -> None:
    subjects = Subjects("prod")
    assert kind_subjects(subjects, []) == ["prod.events.>"]
    assert kind_subjects(subjects, {"registry", "canary"}) == [
        "prod.events.registry.*",
        "prod.events.canary.*",
    ]
    with pytest.raises(ValueError, match="metrics"):
        kind_subjects(subjects, ["metrics"])


def test_the_command_refuses_unknown_kinds_and_bad_durations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="meshgate events")
    configure(parser)
    for wrong in (["--kind", "circuit,metrics"], ["--since", "ten minutes"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
    assert "--since" in capsys.readouterr().err
