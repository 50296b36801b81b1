"""`KubernetesRegistryBackend`: read-only discovery from the Kubernetes API.

Kubernetes already keeps the registry: the EndpointSlice controller lists
each Service's Pods with their readiness, and the kubelet's probes are the
health checks. So this backend only reads:

- `get_instances(name)` → ``GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices``
  with ``labelSelector=kubernetes.io/service-name={name}`` (plus the
  backend's own selector). One instance per address × port, id
  ``address:port`` (``[address]:port`` for IPv6), the port's name as a tag,
  the Pod and node in `metadata`, the endpoint's zone as `zone`.
- `get_services()` → ``GET /api/v1/namespaces/{ns}/services`` with the
  backend's selector: every Service, including one with no ready endpoint.
- `register`, `deregister`, `heartbeat`, `set_status` raise `PermissionError`;
  `expire` returns ``[]`` (Kubernetes removes endpoints itself).

Endpoint conditions → `InstanceStatus` (a missing ``ready``/``serving``
means true, a missing ``terminating`` false, as the API documents):
terminating and still serving → OUT_OF_SERVICE (draining); terminating and
not serving → DOWN; ready → UP; not ready → DOWN (the slice cannot tell a
Pod that is starting from one that fails its readiness probe).

Defaults come from the Pod's environment, as client-go's in-cluster config:
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the service
account token (read again for each request, since the kubelet rotates it)
and CA from ``/var/run/secrets/kubernetes.io/serviceaccount/``. The service
account needs ``list`` on ``endpointslices.discovery.k8s.io`` and ``services``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import anyio
import httpx

from meshgate.bus.instance import InstanceStatus, ServiceInstance

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class KubernetesRegistryBackend:
    """Instances of the Services in one namespace, read from EndpointSlices.

    `api_url` defaults to the in-cluster address (``ValueError`` outside a
    cluster). `token` defaults to the service account token when its file
    exists; with neither, requests go without ``Authorization`` (as through
    ``kubectl proxy``). `ca_file` defaults to the service account CA inside
    the cluster. `http` is an `httpx.AsyncClient` the caller owns and
    configures (TLS included, so it excludes `ca_file`); without one the
    backend opens its own and `aclose` closes it.

    >>> backend = KubernetesRegistryBackend(
    ...     "http://127.0.0.1:8001", namespace="production",
    ...     label_selector="app.kubernetes.io/managed-by=meshgate")
    >>> async def main() -> None:
    ...     for inst in await backend.get_instances("user-service"):
    ...         print(inst.id, inst.zone, inst.status)
    """

    def __init__(
        self,
        api_url: str | None = None,
        *,
        namespace: str = "default",
        label_selector: str | None = None,
        token: str | None = None,
        ca_file: str | None = None,
        http: httpx.AsyncClient | None = None,
        service_account_dir: str = SERVICE_ACCOUNT_DIR,
    ) -> None:
        in_cluster = api_url is None
        if api_url is None:
            api_url = _in_cluster_url()
        if not namespace:
            raise ValueError(f"namespace={namespace!r} is not allowed: expected a namespace name")
        if http is not None and ca_file is not None:
            raise ValueError(
                "ca_file is not allowed together with http: configure TLS on the client you pass"
            )
        self._api_url = api_url.rstrip("/")
        self._namespace = namespace
        self._label_selector = label_selector or None
        self._token = token
        token_path = os.path.join(service_account_dir, "token")
        self._token_path = token_path if token is None and os.path.exists(token_path) else None
        self._owns_http = http is None
        if http is None:
            ca_path = os.path.join(service_account_dir, "ca.crt")
            if ca_file is None and in_cluster and os.path.exists(ca_path):
                ca_file = ca_path
            verify: ssl.SSLContext | bool = (
                True if ca_file is None else ssl.create_default_context(cafile=ca_file)
            )
            http = httpx.AsyncClient(verify=verify, timeout=10.0)
        self._http = http

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        _read_only("register")

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        _read_only("deregister")

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        _read_only("heartbeat")

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        _read_only("set_status")

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """One instance per endpoint address and port of `service`, ordered by id."""
        selector = f"{_SERVICE_NAME_LABEL}={service}"
        if self._label_selector:
            selector += "," + self._label_selector
        slices = await self._list(
            f"/apis/discovery.k8s.io/v1/namespaces/{self._ns()}/endpointslices", selector
        )
        instances: dict[str, ServiceInstance] = {}
        for endpoint_slice in slices:
            for instance in _slice_instances(service, endpoint_slice):
                # An endpoint can sit in two slices while the controller
                # rebalances them; the first copy is as good as the second.
                instances.setdefault(instance.id, instance)
        return [instances[key] for key in sorted(instances)]

    async def get_services(self) -> list[str]:
        """Names of the Services in the namespace that match the selector."""
        path = f"/api/v1/namespaces/{self._ns()}/services"
        services = await self._list(path, self._label_selector)
        return sorted(str(item["metadata"]["name"]) for item in services)

    async def expire(self) -> list[ServiceInstance]:
        """Always ``[]``: Kubernetes removes endpoints itself."""
        return []

    async def aclose(self) -> None:
        """Close the HTTP client if the backend opened it."""
        if self._owns_http:
            await self._http.aclose()

    def _ns(self) -> str:
        return quote(self._namespace, safe="")

    async def _list(self, path: str, selector: str | None) -> list[dict[str, Any]]:
        headers = {"Accept": "application/json"}
        token = self._token
        if self._token_path is not None:
            token = (await anyio.Path(self._token_path).read_text()).strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = {} if selector is None else {"labelSelector": selector}
        response = await self._http.get(self._api_url + path, params=params, headers=headers)
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json().get("items") or []
        return items


def _read_only(operation: str) -> NoReturn:
    raise PermissionError(
        f"KubernetesRegistryBackend is read-only: {operation} is not possible, "
        "Kubernetes keeps endpoints from Pods' readiness (deploy a Service instead)"
    )


def _in_cluster_url() -> str:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ValueError(
            "api_url=None is not allowed outside a cluster: KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT are not set; pass api_url (e.g. 'http://127.0.0.1:8001' "
            "for kubectl proxy)"
        )
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def _endpoint_status(conditions: Mapping[str, Any]) -> InstanceStatus:
    ready = conditions.get("ready") is not False
    serving = ready if conditions.get("serving") is None else bool(conditions["serving"])
    if conditions.get("terminating") is True:
        return InstanceStatus.OUT_OF_SERVICE if serving else InstanceStatus.DOWN
    return InstanceStatus.UP if ready else InstanceStatus.DOWN


def _slice_instances(service: str, endpoint_slice: Mapping[str, Any]) -> list[ServiceInstance]:
    ports = [p for p in endpoint_slice.get("ports") or [] if p.get("port") is not None]
    instances: list[ServiceInstance] = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        status = _endpoint_status(endpoint.get("conditions") or {})
        metadata: dict[str, str | int | float | bool] = {}
        target = endpoint.get("targetRef") or {}
        if target.get("kind") == "Pod" and target.get("name"):
            metadata["pod"] = str(target["name"])
        if endpoint.get("nodeName"):
            metadata["node"] = str(endpoint["nodeName"])
        if endpoint.get("hostname"):
            metadata["hostname"] = str(endpoint["hostname"])
        for address in endpoint.get("addresses") or []:
            host = f"[{address}]" if ":" in address else address
            for port in ports:
                instances.append(
                    ServiceInstance(
                        id=f"{host}:{port['port']}",
                        name=service,
                        host=address,
                        port=int(port["port"]),
                        zone=endpoint.get("zone"),
                        tags=(str(port["name"]),) if port.get("name") else (),
                        metadata=dict(metadata),
                        status=status,
                    )
                )
    return instances
