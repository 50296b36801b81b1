"""`KubernetesRegistryBackend` against RECORDED responses of the Kubernetes
API (no cluster can run here).

The bodies under ``recorded/kubernetes/`` are an ``EndpointSliceList``
(``discovery.k8s.io/v1``), a ``ServiceList`` (``v1``) and a ``Status``
failure, shaped exactly as the API server returns them; an
`httpx.MockTransport` serves them. Tests assert the exact requests sent:
path, ``labelSelector`` and the ``Authorization: Bearer`` header.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends import KubernetesRegistryBackend, RegistryBackend

pytestmark = pytest.mark.recorded

RECORDED = Path(__file__).parent / "recorded" / "kubernetes"
API = "https://10.96.0.1:443"
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im1lc2hnYXRlIn0.e30.c2lnbmF0dXJl"
SELECTOR = "app.kubernetes.io/managed-by=meshgate"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/production/endpointslices"
SERVICES = "/api/v1/namespaces/production/services"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


class ApiServer:
    """Answers GETs by path with a recorded body and keeps every request."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, Any]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, path: str, body: Any, status: int = 200) -> None:
        self.bodies[path] = (status, body)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method != "GET" or request.url.path not in self.bodies:
            return httpx.Response(404, json={"kind": "Status", "code": 404})
        status, body = self.bodies[request.url.path]
        return httpx.Response(status, json=body)


@pytest.fixture
def api() -> ApiServer:
    return ApiServer()


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as client:
        yield client


@pytest.fixture
def backend(http: httpx.AsyncClient, tmp_path: Path) -> KubernetesRegistryBackend:
    return KubernetesRegistryBackend(
        API,
        namespace="production",
        label_selector=SELECTOR,
        token=TOKEN,
        http=http,
        service_account_dir=str(tmp_path),
    )


@pytest.mark.anyio
async def test_satisfies_the_registry_backend_protocol(
    backend: KubernetesRegistryBackend,
) -> None:
    assert isinstance(backend, RegistryBackend)


@pytest.mark.anyio
async def test_get_instances_lists_the_services_endpoint_slices(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SLICES, recorded("endpointslices_user-service.json"))

    await backend.get_instances("user-service")

    [request] = api.requests
    assert request.method == "GET"
    assert request.url.path == SLICES
    assert dict(request.url.params) == {
        "labelSelector": f"kubernetes.io/service-name=user-service,{SELECTOR}"
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


@pytest.mark.anyio
async def test_one_instance_per_endpoint_address_and_port(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SLICES, recorded("endpointslices_user-service.json"))

    instances = await backend.get_instances("user-service")

    assert [i.id for i in instances] == [
        "10.244.1.5:3001",
        "10.244.1.5:9100",
        "10.244.1.9:3001",
        "10.244.1.9:9100",
        "10.244.2.3:3001",
        "10.244.2.3:9100",
        "10.244.2.7:3001",
        "10.244.2.7:9100",
        "10.244.3.4:3001",
        "10.244.3.4:9100",
        "[fd00:10:244:1::5]:3001",
    ]
    assert instances[0] == ServiceInstance(
        id="10.244.1.5:3001",
        name="user-service",
        host="10.244.1.5",
        port=3001,
        zone="us-east-1a",
        tags=("http",),
        metadata={"pod": "user-service-7d9c8f6b5-k2x4p", "node": "node-a"},
        status=InstanceStatus.UP,
    )
    assert instances[-1].host == "fd00:10:244:1::5"
    assert instances[1].tags == ("metrics",)


@pytest.mark.anyio
async def test_endpoint_conditions_map_to_instance_status(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SLICES, recorded("endpointslices_user-service.json"))

    statuses = {i.host: i.status for i in await backend.get_instances("user-service")}

    assert statuses == {
        "10.244.1.5": InstanceStatus.UP,  # ready
        "10.244.2.7": InstanceStatus.DOWN,  # not ready, not terminating
        "10.244.1.9": InstanceStatus.OUT_OF_SERVICE,  # terminating, still serving
        "10.244.2.3": InstanceStatus.DOWN,  # terminating, no longer serving
        "10.244.3.4": InstanceStatus.UP,  # no conditions: ready by the API's rule
        "fd00:10:244:1::5": InstanceStatus.UP,
    }


@pytest.mark.anyio
async def test_an_endpoint_without_a_zone_keeps_its_hostname(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SLICES, recorded("endpointslices_user-service.json"))

    [stateful] = [
        i for i in await backend.get_instances("user-service") if i.id == "10.244.3.4:3001"
    ]

    assert stateful.zone is None
    assert stateful.metadata == {
        "pod": "user-service-0",
        "node": "node-c",
        "hostname": "user-service-0",
    }


@pytest.mark.anyio
async def test_a_service_without_slices_has_no_instances(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(
        SLICES,
        {
            "kind": "EndpointSliceList",
            "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"resourceVersion": "4817263"},
            "items": [],
        },
    )

    assert await backend.get_instances("billing") == []


@pytest.mark.anyio
async def test_get_services_lists_the_namespaces_services_by_selector(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SERVICES, recorded("services.json"))

    assert await backend.get_services() == ["order-service", "user-service"]
    [request] = api.requests
    assert request.url.path == SERVICES
    assert dict(request.url.params) == {"labelSelector": SELECTOR}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.anyio
async def test_without_a_selector_only_the_service_name_selects(
    http: httpx.AsyncClient, api: ApiServer, tmp_path: Path
) -> None:
    api.on("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {"items": []})
    api.on("/api/v1/namespaces/default/services", {"items": []})
    backend = KubernetesRegistryBackend(
        "http://127.0.0.1:8001", http=http, service_account_dir=str(tmp_path)
    )

    await backend.get_instances("user-service")
    await backend.get_services()

    slices, services = api.requests
    assert str(slices.url) == (
        "http://127.0.0.1:8001/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        "?labelSelector=kubernetes.io%2Fservice-name%3Duser-service"
    )
    assert str(services.url) == "http://127.0.0.1:8001/api/v1/namespaces/default/services"
    # no token and no service account: as through `kubectl proxy`
    assert "Authorization" not in slices.headers


@pytest.mark.anyio
async def test_a_refusal_by_the_api_server_raises(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    api.on(SLICES, recorded("forbidden.json"), status=403)

    with pytest.raises(httpx.HTTPStatusError) as raised:
        await backend.get_instances("user-service")
    assert raised.value.response.json()["reason"] == "Forbidden"


WRITES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "register": (
        (ServiceInstance(id="x", name="user-service", host="10.0.0.1", port=1),),
        {"ttl": 30},
    ),
    "deregister": (("user-service", "x"), {}),
    "heartbeat": (("user-service", "x"), {}),
    "set_status": (("user-service", "x", InstanceStatus.DOWN), {}),
}


@pytest.mark.anyio
@pytest.mark.parametrize("operation", sorted(WRITES))
async def test_writes_are_refused_as_read_only(
    backend: KubernetesRegistryBackend, api: ApiServer, operation: str
) -> None:
    args, kwargs = WRITES[operation]
    write = getattr(backend, operation)

    with pytest.raises(PermissionError, match=f"read-only: {operation}"):
        await write(*args, **kwargs)
    assert api.requests == []


@pytest.mark.anyio
async def test_expire_has_nothing_to_report(
    backend: KubernetesRegistryBackend, api: ApiServer
) -> None:
    assert await backend.expire() == []
    assert api.requests == []


@pytest.mark.anyio
async def test_in_cluster_defaults_come_from_the_pods_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: ApiServer
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").write_text("first-token\n")
    api.on("/api/v1/namespaces/default/services", recorded("services.json"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        backend = KubernetesRegistryBackend(http=http, service_account_dir=str(tmp_path))

        await backend.get_services()
        # the kubelet rotates the projected token; every request reads it anew
        (tmp_path / "token").write_text("rotated-token\n")
        await backend.get_services()

    first, second = api.requests
    assert str(first.url) == "https://10.96.0.1/api/v1/namespaces/default/services"
    assert first.headers["Authorization"] == "Bearer first-token"
    assert second.headers["Authorization"] == "Bearer rotated-token"


@pytest.mark.anyio
async def test_an_ipv6_api_address_from_the_environment_is_bracketed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, http: httpx.AsyncClient, api: ApiServer
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    api.on("/api/v1/namespaces/default/services", recorded("services.json"))
    backend = KubernetesRegistryBackend(http=http, service_account_dir=str(tmp_path))

    await backend.get_services()

    [request] = api.requests
    assert str(request.url) == "https://[fd00:10:96::1]:6443/api/v1/namespaces/default/services"


@pytest.mark.parametrize("explicit", [False, True])
def test_the_cluster_ca_is_what_tls_trusts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, explicit: bool
) -> None:
    """Inside the cluster the service account's CA is loaded by default; a
    CA file that is not a certificate fails at construction, not mid-request."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    ca = tmp_path / ("custom.pem" if explicit else "ca.crt")
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")

    with pytest.raises(ssl.SSLError):
        KubernetesRegistryBackend(
            ca_file=str(ca) if explicit else None, service_account_dir=str(tmp_path)
        )


def test_outside_a_cluster_the_api_url_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)

    with pytest.raises(ValueError, match="api_url=None is not allowed outside a cluster"):
        KubernetesRegistryBackend()


@pytest.mark.anyio
async def test_ca_file_and_a_given_client_exclude_each_other(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="ca_file is not allowed together with http"):
        KubernetesRegistryBackend(API, ca_file=str(tmp_path / "ca.crt"), http=http)


@pytest.mark.anyio
async def test_aclose_closes_its_own_client_but_not_a_given_one(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await KubernetesRegistryBackend(API, http=http, service_account_dir=str(tmp_path)).aclose()
    assert not http.is_closed

    own = KubernetesRegistryBackend(API, service_account_dir=str(tmp_path))
    await own.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await own.get_services()
