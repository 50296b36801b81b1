"""The four scenario demos of the reference's starter: a canary deployment
promoted and then rolled back, version routing by header, URI, query and
weights, traffic management (mirroring, rate limits, retries, timeouts,
bulkhead, outlier ejection), and the whole stack put together. Each runs
real HTTP services and the gateway in this process, on loopback ports:
``meshgate demo scenarios`` runs all four."""
