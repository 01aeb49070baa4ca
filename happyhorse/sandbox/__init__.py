"""A local HappyHorse API server for development and tests.

It speaks the wire contract (seed or native dialect), runs tasks on a wall-clock
lifecycle, serves real playable MP4 results and can be told to misbehave::

    async with SandboxServer(SandboxConfig(complete_after=0.2)) as server:
        server.state.faults.add("status", status=503, count=2)
        ...  # point a client at server.base_url

``python -m happyhorse.sandbox`` runs it as a standalone process.
"""

from happyhorse.sandbox.app import SandboxServer, create_app
from happyhorse.sandbox.state import Fault, FaultQueue, Phase, SandboxConfig, SandboxState

__all__ = [
    "Fault",
    "FaultQueue",
    "Phase",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "create_app",
]
