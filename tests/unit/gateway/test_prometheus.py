import math

from prometheus_client.parser import text_string_to_metric_families

from meshgate.gateway.prometheus import Exposition


def test_prometheus_parser_reads_families_labels_and_values() -> None:
    text = Exposition()
    text.family(
        "meshgate_requests_total",
        "counter",
        "Requests answered, by route and status.",
        [
            ({"route": "users", "status": "200"}, 10),
            ({"route": 'we"ird\\name\n', "status": "502"}, 1),
        ],
    )
    text.family("meshgate_circuit_open", "gauge", "1 when open.", [({"route": "pay"}, 1)])
    text.family(
        "meshgate_latency_ms",
        "summary",
        "Latency.",
        [({"route": "users", "quantile": "0.99"}, 12.5)],
    )
    text.samples("meshgate_latency_ms_count", [({"route": "users"}, 10)])
    text.family("meshgate_up", "gauge", "Odd values.", [({}, math.inf), ({"x": "nan"}, math.nan)])
    families = {f.name: f for f in text_string_to_metric_families(text.render().decode())}
    requests = families["meshgate_requests"]
    assert requests.type == "counter"
    values = {(s.labels["route"], s.labels["status"]): s.value for s in requests.samples}
    assert values[("users", "200")] == 10
    assert values[('we"ird\\name\n', "502")] == 1
    assert families["meshgate_circuit_open"].samples[0].value == 1
    summary = {s.name: s.value for s in families["meshgate_latency_ms"].samples}
    assert summary == {"meshgate_latency_ms": 12.5, "meshgate_latency_ms_count": 10}
    assert math.isinf(families["meshgate_up"].samples[0].value)
