"""The gateway demos: the reference's three ways to define a gateway —
config-driven, decorator-based and programmatic — each in front of real
HTTP services on loopback ports, with real requests sent through it."""
