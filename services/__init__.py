"""Demo microservices for the local cluster: small real HTTP services that
register themselves on the bus, heartbeat, serve ``/health``, answer JSON
naming the instance and version that served each request, and misbehave on
purpose when told to.

Seven of them (`services.catalog`): user-service v1 and v2, order-service
stable 1.0.0 and canary 2.0.0, product-service, payment-service, and
analytics-service, the target of product-service's mirrored traffic. Run one
with ``meshgate service NAME`` or ``python -m services NAME``::

    meshgate service order-service-canary --nats nats://127.0.0.1:4222 \\
        --error-rate 0.2 --latency 50ms

Knobs: ``--error-rate`` (a seeded share of 500s), ``--latency`` (a delay
before each answer), ``--fail-health`` (``/health`` answers 503), each also
read from its ``MESHGATE_SERVICE_*`` variable, and changed while the
service runs with ``POST /_knobs`` (see `services.demo_app`)::

    curl -X POST localhost:3004/_knobs -d '{"error_rate": 0.5, "latency_ms": 20}'

Services use only the discovery library (and the bus it rides on), never
`meshgate.gateway`: they are what a user's own services would be.
"""
