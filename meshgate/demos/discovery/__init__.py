"""The four discovery demos of the reference: registration, the discovery
client, every load balancer, and the HTTP service client. Each is
self-contained (an in-process registry, loopback HTTP servers) and runs in a
second or two: ``meshgate demo discovery`` runs all four."""
