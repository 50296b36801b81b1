import pytest

from meshgate.bus.instance import ServiceInstance
from meshgate.gateway.outlier_detection import OutlierDetector


def _instances(*ids: str) -> tuple[ServiceInstance, ...]:
    return tuple(ServiceInstance(id=i, name="svc", host="127.0.0.1", port=1) for i in ids)


def test_consecutive_failures_eject_for_the_ejection_time() -> None:
    detector = OutlierDetector(consecutive_failures=3, ejection_time=10.0)
    assert detector.on_result("a", False, 0.0, population=4) is None
    assert detector.on_result("a", False, 1.0, population=4) is None
    assert detector.on_result("a", False, 2.0, population=4) is True
    assert detector.is_ejected("a", 11.9)
    assert not detector.is_ejected("a", 12.0)


def test_a_success_resets_the_failure_count() -> None:
    detector = OutlierDetector(consecutive_failures=2, ejection_time=10.0)
    detector.on_result("a", False, 0.0, population=4)
    detector.on_result("a", True, 1.0, population=4)
    assert detector.on_result("a", False, 2.0, population=4) is None
    assert not detector.is_ejected("a", 2.0)


def test_repeated_ejections_last_longer_up_to_the_cap() -> None:
    detector = OutlierDetector(consecutive_failures=1, ejection_time=10.0, max_ejection_time=25.0)
    detector.on_result("a", False, 0.0, population=4)
    assert detector.ejected(0.0) == {"a": 10.0}
    detector.on_result("a", False, 10.0, population=4)
    assert detector.ejected(10.0) == {"a": 20.0}
    detector.on_result("a", False, 30.0, population=4)
    assert detector.ejected(30.0) == {"a": 25.0}


def test_healthy_time_in_rotation_decays_the_ejection_count() -> None:
    detector = OutlierDetector(consecutive_failures=1, ejection_time=10.0)
    detector.on_result("a", False, 0.0, population=4)  # out until 10, times=1
    detector.on_result("a", False, 10.0, population=4)  # out until 30, times=2
    # 40 s healthy after returning at 30: two decay periods of 20 s
    detector.on_result("a", False, 70.0, population=4)
    assert detector.ejected(70.0) == {"a": 10.0}


def test_never_ejects_more_than_the_max_percent() -> None:
    detector = OutlierDetector(consecutive_failures=1, ejection_time=10.0, max_ejection_percent=50)
    assert detector.on_result("a", False, 0.0, population=4) is True
    assert detector.on_result("b", False, 0.0, population=4) is True
    assert detector.on_result("c", False, 0.0, population=4) is False
    assert set(detector.ejected(0.0)) == {"a", "b"}


def test_never_ejects_the_last_instance() -> None:
    detector = OutlierDetector(consecutive_failures=1, max_ejection_percent=100)
    assert detector.on_result("a", False, 0.0, population=1) is False
    assert detector.on_result("a", False, 0.0, population=2) is True
    assert detector.on_result("b", False, 0.0, population=2) is False


def test_admitted_drops_ejected_instances_and_keeps_the_same_tuple_otherwise() -> None:
    detector = OutlierDetector(consecutive_failures=1, ejection_time=5.0)
    instances = _instances("a", "b", "c")
    assert detector.admitted(instances, 0.0) is instances
    detector.on_result("b", False, 0.0, population=3)
    assert [i.id for i in detector.admitted(instances, 1.0)] == ["a", "c"]
    assert detector.admitted(instances, 5.0) is instances


def test_failures_of_calls_in_flight_at_ejection_do_not_extend_it() -> None:
    detector = OutlierDetector(consecutive_failures=1, ejection_time=10.0)
    detector.on_result("a", False, 0.0, population=3)
    assert detector.on_result("a", False, 1.0, population=3) is None
    assert detector.ejected(1.0) == {"a": 9.0}


@pytest.mark.parametrize(
    ("option", "value"),
    [("consecutive_failures", 0), ("ejection_time", 0), ("max_ejection_percent", 101)],
)
def test_bad_options_name_themselves(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        OutlierDetector(**{option: value})  # type: ignore[arg-type]
