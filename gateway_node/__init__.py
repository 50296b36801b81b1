"""A gateway replica as a process: `meshgate gateway --config FILE`.

The library (`meshgate.gateway.GatewayServer`) serves requests; this package
wires it to the bus — instances from the registry nodes, presence, metrics
for the canary controller, circuit transitions — and to signals and logs.
"""
