"""`meshgate up`: the whole system on one machine — an embedded NATS server,
the registry node, the health checker, the canary controller, the demo
services and N gateway replicas — as separate processes, started in order,
watched, and stopped together."""
