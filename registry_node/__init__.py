"""The registry node and the health checker: the processes that write
registrations (DESIGN.md, "The processes").

`RegistryService` is the node's work on any bus and backend; `run_registry`
runs it as a process (``meshgate registry`` / ``python -m registry_node``).

>>> from registry_node import RegistryService, run_registry
"""

from registry_node.process import run_registry
from registry_node.service import RegistryService

__all__ = ["RegistryService", "run_registry"]
