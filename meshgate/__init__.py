"""meshgate: API gateway, resilience toolkit and service discovery over NATS.

The toolkit stands alone::

    from meshgate.resilience import CircuitBreaker
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0)
"""

__version__ = "0.1.0"
