"""Demo backends: tiny HTTP services that run in the demo's own process, on
free loopback ports, and answer JSON saying which service, instance and
version served the request. Knobs make them fail (a seeded error rate, or an
outage) or slow. `ServiceFleet` starts several, registers them, and stops
them; `shop` holds the services of the reference's examples."""

from __future__ import annotations

from meshgate.demos.backends.demo_service import DemoService
from meshgate.demos.backends.fleet import ServiceFleet
from meshgate.demos.backends.service_spec import ServiceSpec

__all__ = ["DemoService", "ServiceFleet", "ServiceSpec"]
