"""Requests per second of the gateway's HTTP core: the server answering
directly, and `forward` proxying to it, measured with wrk.

    .venv/bin/python benchmarks/http_core.py            # needs wrk and taskset
    .venv/bin/python benchmarks/http_core.py --duration 10 --connections 128

Each server is a separate process pinned to one core with taskset (the
server under test alone on core 1; the backend of the proxied run and wrk
share core 0), so the numbers are one core's worth. Besides wrk's req/s,
the script reports requests per CPU-second of the process under test (its
user + system time from /proc), which stays meaningful when other work
shares the machine. uvloop is used when installed (`--no-uvloop` to compare
with plain asyncio).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys

from wrk_harness import cpu_seconds, free_port, run_wrk, wait_listening

from meshgate.gateway.http import (
    HttpServer,
    Request,
    Responder,
    UpstreamPools,
    forward,
    install_fast_loop,
)

_BODY = b'{"message":"hello"}'
_HEADERS = [(b"Content-Type", b"application/json")]


async def _serve_backend(port: int) -> None:
    async def hello(request: Request, responder: Responder) -> None:
        await responder.send(200, _BODY, _HEADERS)

    server = HttpServer(hello)
    await server.start("127.0.0.1", port)
    await asyncio.Event().wait()


async def _serve_proxy(port: int, backend_port: int) -> None:
    pools = UpstreamPools()
    pool = pools.get("127.0.0.1", backend_port)

    async def relay(request: Request, responder: Responder) -> None:
        await forward(request, responder, pool, target=request.raw_target, response_timeout=10.0)

    server = HttpServer(relay)
    await server.start("127.0.0.1", port)
    await asyncio.Event().wait()


def _start(core: int, *args: str, uvloop: bool) -> subprocess.Popen[bytes]:
    # exec, so that the pid is the server's own and /proc shows its CPU time
    command = ["taskset", "-c", str(core), sys.executable, __file__, *args]
    if not uvloop:
        command.append("--no-uvloop")
    return subprocess.Popen(command, stderr=subprocess.DEVNULL)


def _measure(pid: int, port: int, duration: int, connections: int) -> tuple[float, float]:
    """(wrk req/s, requests per CPU-second of process `pid`)."""
    cpu_before = cpu_seconds([pid])
    rate = _wrk(port, duration, connections)
    cpu = cpu_seconds([pid]) - cpu_before
    return rate, rate * duration / cpu


def _wrk(port: int, duration: int, connections: int) -> float:
    result = run_wrk(
        f"http://127.0.0.1:{port}/hello", connections=connections, duration=duration, core=0
    )
    if result.errors:
        raise RuntimeError(f"wrk run was not clean:\n{result.output}")
    return result.requests_per_second


def _run(duration: int, connections: int, uvloop: bool) -> None:
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y wrk util-linux)")
    backend_port, proxy_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # direct: the server under test alone on core 1
        processes.append(_start(1, "backend", str(backend_port), uvloop=uvloop))
        wait_listening(backend_port)
        _wrk(backend_port, 1, connections)  # warm-up
        direct = _measure(processes[-1].pid, backend_port, duration, connections)
        processes.pop().terminate()
        # proxied: the proxy alone on core 1, its backend beside wrk on core 0
        backend_port = free_port()
        processes.append(_start(0, "backend", str(backend_port), uvloop=uvloop))
        processes.append(_start(1, "proxy", str(proxy_port), str(backend_port), uvloop=uvloop))
        wait_listening(backend_port)
        wait_listening(proxy_port)
        _wrk(proxy_port, 1, connections)
        proxied = _measure(processes[-1].pid, proxy_port, duration, connections)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    loop = "uvloop" if uvloop else "asyncio"
    print(f"loop={loop} connections={connections} duration={duration}s")
    print(f"{'':8} {'wrk req/s':>10} {'req/cpu-s':>10}")
    print(f"{'direct':8} {direct[0]:10.0f} {direct[1]:10.0f}")
    print(f"{'proxied':8} {proxied[0]:10.0f} {proxied[1]:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="run", choices=["run", "backend", "proxy"])
    parser.add_argument("ports", nargs="*", type=int)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-uvloop", action="store_true")
    options = parser.parse_args()
    uvloop = not options.no_uvloop
    if options.role == "run":
        _run(options.duration, options.connections, uvloop)
        return
    if uvloop:
        install_fast_loop()
    if options.role == "backend":
        asyncio.run(_serve_backend(options.ports[0]))
    else:
        asyncio.run(_serve_proxy(options.ports[0], options.ports[1]))


if __name__ == "__main__":
    main()
