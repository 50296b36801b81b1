"""The gateway against nginx and haproxy as reverse proxies, in one run, on
loopback, with the same backend and the same load for each (about 2
minutes).

    .venv/bin/python benchmarks/gateway.py          # needs wrk, nginx, haproxy, taskset
    .venv/bin/python benchmarks/gateway.py --duration 5 --idle 2000 --quick

Rows: wrk straight to the backend; nginx; haproxy; meshgate with a plain
route; meshgate with a full route; meshgate with 1,000 routes, hitting one
of the last. The backend is nginx (one worker) answering every request with
a 200-byte JSON body from ``return 200 '...'``. wrk and the backend share
core 0; the proxy under test runs alone on core 1 (``taskset -c 1``), so
each proxy has one core. Load: ``wrk -t1 -c64 -d10s --latency``, after a
1 s warm-up. Besides wrk's numbers, each row shows the proxy's CPU share
and its requests per CPU-second, which stays meaningful when the proxy is
not the bottleneck (nginx and haproxy are not: wrk and the backend fill
core 0 first) or when other processes share the machine. A row that other
processes disturbed (more than 10% of a core, from /proc/stat) is run again
(`--attempts`) and the quieter run kept; a note says when it stayed disturbed.

Then: the latency that each proxy adds at one connection (p50 at ``-c1``
minus the direct p50), and the memory (VmRSS of the whole process tree)
of each proxy holding 10,000 idle keep-alive client connections, each of
which has made one request, opened by a helper process (haproxy, which
needs two descriptors per connection, holds 9,500 within the same
20,000-descriptor limit).

meshgate runs as users run it: ``meshgate gateway --config FILE
--standalone`` with a TOML config that this script writes (see
`plain_config`, `full_config`, `many_routes_config`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from route_matching import route_paths
from wrk_harness import (
    WrkResult,
    core_busy_seconds,
    cpu_seconds,
    free_port,
    process_tree,
    rss_kib,
    run_wrk,
    wait_listening,
)

ROOT = Path(__file__).resolve().parent.parent
MESHGATE = ROOT / ".venv" / "bin" / "meshgate"
PROXY_CORE = 1
LOAD_CORE = 0
IDLE_CONNECTIONS = 10_000
FILE_LIMIT = 20_000
"""The open-files limit given to each proxy and to the helper holding idle
connections (within the usual hard limit)."""

BODY = '{"id":12345,"name":"meshgate benchmark","status":"ok","tags":["alpha","beta","gamma"],' + (
    '"items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}],"note":"' + "x" * 50 + '"}'
)
"""The backend's answer: 200 bytes of JSON."""
assert len(BODY) == 200, len(BODY)

PATH = "/api/hello"
"""What wrk asks for, through every proxy."""

MANY_ROUTES = 1_000
DISTURBED_PERCENT = 10.0
"""A run during which other processes took more of a core than this is
run again (see `measure`)."""
HAPROXY_MAXCONN = 9_900
"""haproxy keeps two descriptors per connection (client and server side), so
this is as many as `FILE_LIMIT` allows it; it holds fewer idle connections."""


# -- configs ------------------------------------------------------------------


def backend_nginx_config(prefix: Path, port: int) -> str:
    return f"""
worker_processes 1;
daemon off;
pid {prefix}/backend.pid;
error_log {prefix}/backend-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    {_temp_paths(prefix, "backend")}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{BODY}';
        }}
    }}
}}
"""


def proxy_nginx_config(prefix: Path, port: int, backend: int) -> str:
    return f"""
worker_processes 1;
worker_rlimit_nofile {FILE_LIMIT};
daemon off;
pid {prefix}/proxy.pid;
error_log {prefix}/proxy-error.log warn;
events {{ worker_connections {FILE_LIMIT - 1000}; }}
http {{
    access_log off;
    keepalive_requests 10000;
    keepalive_timeout 300s;
    {_temp_paths(prefix, "proxy")}
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _temp_paths(prefix: Path, name: str) -> str:
    return "\n    ".join(
        f"{kind}_temp_path {prefix}/{name}-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def haproxy_config(port: int, backend: int) -> str:
    return f"""
global
    nbthread 1
    maxconn {HAPROXY_MAXCONN}

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s

frontend bench
    bind 127.0.0.1:{port}
    default_backend backend

backend backend
    server b1 127.0.0.1:{backend}
"""


_COMMON = """
[limits]
idle_timeout = "300s"
"""


def plain_config(backend: int) -> str:
    """One route to the backend; no guards, no metrics, no per-request log.
    (What stays on is what every route has: X-Request-Id, X-Forwarded-*,
    hop-by-hop header handling, round-robin over the upstreams.)"""
    return f"""
[middleware]
logging = false

[metrics]
enabled = false
{_COMMON}
[[routes]]
path = "/api/**"
upstreams = ["127.0.0.1:{backend}"]
"""


def full_config(backend: int, prefix: Path) -> str:
    """One route with every guard that works on fixed upstreams, metrics on,
    and an access-log line per request, to a file (`middleware.access_log`)."""
    return f"""
[middleware]
logging = true
access_log = "{prefix / "access.log"}"

[metrics]
enabled = true
{_COMMON}
[[routes]]
path = "/api/**"
upstreams = ["127.0.0.1:{backend}"]
timeout = "10s"
circuit_breaker = {{ failure_threshold = 5, reset_timeout = "10s" }}
rate_limit = {{ max = 1000000000, window = "1m", key = "route" }}
retry = {{ max_attempts = 2 }}
outlier_detection = {{ consecutive_failures = 5, ejection_time = "30s" }}
"""


def many_routes_config(backend: int) -> tuple[str, str]:
    """`MANY_ROUTES` routes (the shapes of `route_matching.py`), plain like
    `plain_config`, and the path of a request for one of the last of them."""
    paths = route_paths(MANY_ROUTES)
    routes = "\n".join(
        f'[[routes]]\npath = "{path}"\nupstreams = ["127.0.0.1:{backend}"]\n' for path in paths
    )
    # route_paths ends with "/api/**" and "/**"; the last service's capture
    # route comes a little before them.
    last = max(i for i, path in enumerate(paths) if path.endswith("/items/{id}"))
    target = paths[last].replace("{id}", "12345")
    config = f"""
[middleware]
logging = false

[metrics]
enabled = false
{_COMMON}
{routes}"""
    return config, target


# -- processes ----------------------------------------------------------------


def _raise_file_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = FILE_LIMIT if hard == resource.RLIM_INFINITY else min(FILE_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


@dataclass
class Server:
    """A server process, started pinned to a core, stopped at the end."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name: str, core: int, port: int, command: list[str], *, stderr: Path) -> Server:
    """Start `command` on `core`, its stdout and stderr to the file `stderr`."""
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            ["taskset", "-c", str(core), *command],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            preexec_fn=_raise_file_limit,
        )
    server = Server(name, port, process)
    try:
        wait_listening(port, timeout=20.0)
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start")
    except RuntimeError as error:
        server.stop()
        said = stderr.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not start: {error}\n{said}") from None
    return server


@contextlib.contextmanager
def running(
    name: str, core: int, port: int, command: list[str], *, stderr: Path
) -> Iterator[Server]:
    server = start(name, core, port, command, stderr=stderr)
    try:
        yield server
    finally:
        server.stop()


def nginx_command(prefix: Path, config: str, name: str) -> list[str]:
    path = prefix / f"{name}.conf"
    path.write_text(config)
    return ["nginx", "-p", str(prefix), "-e", str(prefix / f"{name}-error.log"), "-c", str(path)]


def haproxy_command(prefix: Path, config: str) -> list[str]:
    path = prefix / "haproxy.cfg"
    path.write_text(config)
    return ["haproxy", "-db", "-f", str(path)]


def meshgate_command(prefix: Path, config: str, name: str, port: int) -> list[str]:
    path = prefix / f"{name}.toml"
    path.write_text(config)
    return [
        str(MESHGATE),
        "gateway",
        "--config",
        str(path),
        "--standalone",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
        "--log-level",
        "info",
    ]


# -- measurements -------------------------------------------------------------


@dataclass
class Row:
    name: str
    result: WrkResult
    cpu_percent: float | None
    """The proxy's share of its core over the run."""
    disturbed_percent: float
    """How much of the two cores other processes of the machine took
    meanwhile (neither the proxy, the backend nor wrk), in % of one core."""

    @property
    def per_cpu_second(self) -> float | None:
        """Requests per CPU-second of the proxy: its cost, whatever else ran."""
        if not self.cpu_percent:
            return None
        return self.result.requests_per_second / (self.cpu_percent / 100)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_once(
    name: str,
    server: Server | None,
    backend: Server,
    url: str,
    *,
    connections: int,
    duration: float,
) -> Row:
    """One wrk run; the proxy's CPU share, and what other processes took of
    both cores (their busy time less the proxy's, the backend's and wrk's)."""
    proxy_pids = [] if server is None else server.pids()
    backend_pids = backend.pids()
    cores = (LOAD_CORE, PROXY_CORE)
    proxy_before, backend_before = cpu_seconds(proxy_pids), cpu_seconds(backend_pids)
    wrk_before = _children_cpu_seconds()
    busy_before = sum(core_busy_seconds(core) for core in cores)
    started = time.monotonic()
    result = run_wrk(url, connections=connections, duration=duration, core=LOAD_CORE)
    elapsed = time.monotonic() - started
    proxy = cpu_seconds(proxy_pids) - proxy_before
    ours = proxy + cpu_seconds(backend_pids) - backend_before + _children_cpu_seconds() - wrk_before
    busy = sum(core_busy_seconds(core) for core in cores) - busy_before
    cpu = None if server is None else proxy / elapsed * 100
    return Row(name, result, cpu, max(0.0, busy - ours) / elapsed * 100)


def measure(
    name: str,
    server: Server | None,
    backend: Server,
    url: str,
    *,
    connections: int,
    duration: float,
    attempts: int,
) -> Row:
    """A short warm-up, then a wrk run; again (up to `attempts` runs in all)
    while other processes took more than `DISTURBED_PERCENT` of a core, and
    the least disturbed run is kept."""
    run_wrk(url, connections=connections, duration=1, core=LOAD_CORE)
    best: Row | None = None
    for _ in range(attempts):
        row = measure_once(name, server, backend, url, connections=connections, duration=duration)
        if best is None or row.disturbed_percent < best.disturbed_percent:
            best = row
        if row.disturbed_percent <= DISTURBED_PERCENT:
            break
    assert best is not None
    return best


@dataclass
class Memory:
    name: str
    before_kib: int
    held_kib: int
    held: int

    @property
    def per_connection_kib(self) -> float:
        return (self.held_kib - self.before_kib) / self.held


def hold_idle(server: Server, path: str, count: int) -> Memory:
    """RSS of `server`'s processes before and while a helper process holds
    `count` keep-alive connections, each after one request."""
    pids = server.pids()
    before = rss_kib(pids)
    helper = subprocess.Popen(
        [
            "taskset",
            "-c",
            str(LOAD_CORE),
            sys.executable,
            __file__,
            "hold",
            str(server.port),
            path,
            str(count),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=_raise_file_limit,
    )
    assert helper.stdin is not None
    assert helper.stdout is not None
    try:
        line = helper.stdout.readline().decode().strip()
        if not line.startswith("held "):
            raise RuntimeError(f"the helper holding connections said {line!r}")
        held = int(line.split()[1])
        time.sleep(1.0)  # let the server settle: all reads done, buffers freed
        after = rss_kib(server.pids())
    finally:
        helper.stdin.close()
        try:
            helper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
    return Memory(server.name, before, after, held)


def _hold(port: int, path: str, count: int) -> None:
    """The helper: open `count` connections, one request on each, then hold
    them until stdin closes."""
    _raise_file_limit()
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    held: list[socket.socket] = []
    deadline = time.monotonic() + 60
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(request)
        _read_response(connection)
        held.append(connection)
    print(f"held {len(held)}", flush=True)
    sys.stdin.read()
    for connection in held:
        connection.close()


def _read_response(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed a connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"status {status!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed a connection")
        body += chunk


# -- the run ------------------------------------------------------------------


@dataclass
class Proxy:
    name: str
    launch: Callable[[Path, int, int], tuple[list[str], str]]
    """(prefix, port, backend port) → (command, request path)."""
    log: bool = False
    c1: bool = True
    memory: bool = False
    max_idle: int | None = None


def proxies(quick: bool) -> list[Proxy]:
    def nginx(prefix: Path, port: int, backend: int) -> tuple[list[str], str]:
        return nginx_command(prefix, proxy_nginx_config(prefix, port, backend), "proxy"), PATH

    def haproxy(prefix: Path, port: int, backend: int) -> tuple[list[str], str]:
        return haproxy_command(prefix, haproxy_config(port, backend)), PATH

    def plain(prefix: Path, port: int, backend: int) -> tuple[list[str], str]:
        return meshgate_command(prefix, plain_config(backend), "plain", port), PATH

    def full(prefix: Path, port: int, backend: int) -> tuple[list[str], str]:
        return meshgate_command(prefix, full_config(backend, prefix), "full", port), PATH

    def many(prefix: Path, port: int, backend: int) -> tuple[list[str], str]:
        config, target = many_routes_config(backend)
        return meshgate_command(prefix, config, "many", port), target

    return [
        Proxy("nginx", nginx, memory=True),
        Proxy("haproxy", haproxy, memory=not quick, max_idle=HAPROXY_MAXCONN - 400),
        Proxy("meshgate plain", plain, memory=True),
        Proxy("meshgate full", full, log=True),
        Proxy(f"meshgate {MANY_ROUTES:,} routes", many, c1=False),
    ]


def run(duration: float, c1_duration: float, idle: int, quick: bool, attempts: int) -> None:
    for tool in ("wrk", "taskset", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install -y wrk nginx-light haproxy)")
    if not MESHGATE.exists():
        raise SystemExit(f"{MESHGATE} is missing: pip install -e . in .venv")
    rows: list[Row] = []
    c1: dict[str, WrkResult] = {}
    memory: list[Memory] = []
    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as temp:
        prefix = Path(temp)
        backend_port = free_port()
        backend_command = nginx_command(
            prefix, backend_nginx_config(prefix, backend_port), "backend"
        )
        with running(
            "backend", LOAD_CORE, backend_port, backend_command, stderr=prefix / "backend.out"
        ) as backend:
            url = f"http://127.0.0.1:{backend_port}{PATH}"
            rows.append(
                measure(
                    "direct",
                    None,
                    backend,
                    url,
                    connections=64,
                    duration=duration,
                    attempts=attempts,
                )
            )
            c1["direct"] = run_wrk(url, connections=1, duration=c1_duration, core=LOAD_CORE)
            for proxy in proxies(quick):
                port = free_port()
                command, path = proxy.launch(prefix, port, backend_port)
                log = prefix / f"{proxy.name.replace(' ', '-')}.out"
                with running(proxy.name, PROXY_CORE, port, command, stderr=log) as server:
                    url = f"http://127.0.0.1:{port}{path}"
                    rows.append(
                        measure(
                            proxy.name,
                            server,
                            backend,
                            url,
                            connections=64,
                            duration=duration,
                            attempts=attempts,
                        )
                    )
                    if proxy.c1:
                        c1[proxy.name] = run_wrk(
                            url, connections=1, duration=c1_duration, core=LOAD_CORE
                        )
                    if proxy.memory and idle:
                        count = idle if proxy.max_idle is None else min(idle, proxy.max_idle)
                        memory.append(hold_idle(server, path, count))
                if proxy.log:
                    lines = (prefix / "access.log").read_bytes().count(b"\n")
                    print(f"({proxy.name}: {lines:,} access-log lines written to its file)")
    print_tables(rows, c1, memory, duration)


def print_tables(
    rows: list[Row], c1: dict[str, WrkResult], memory: list[Memory], duration: float
) -> None:
    nginx = next(row.result for row in rows if row.name == "nginx")
    print(f"\nwrk -t1 -c64 -d{duration:g}s --latency; each proxy alone on core {PROXY_CORE}")
    print(
        "| | req/s | p50 ms | p99 ms | errors | × nginx req/s | p99 / nginx p99"
        " | proxy CPU | req per proxy CPU-s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for row in rows:
        r = row.result
        cpu = "—" if row.cpu_percent is None else f"{row.cpu_percent:.0f}%"
        per_cpu = row.per_cpu_second
        efficiency = "—" if per_cpu is None else f"{per_cpu:,.0f}"
        print(
            f"| {row.name} | {r.requests_per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f}"
            f" | {r.errors} | {r.requests_per_second / nginx.requests_per_second:.2f}"
            f" | {r.p99_ms / nginx.p99_ms:.2f} | {cpu} | {efficiency} |"
        )
    for row in rows:
        if row.disturbed_percent > DISTURBED_PERCENT:
            print(
                f"(other processes took {row.disturbed_percent:.0f}% of a core"
                f" during the {row.name} row)"
            )
    direct = c1["direct"]
    print("\nOne connection (wrk -t1 -c1): p50 and what the proxy adds to direct")
    print("| | req/s | p50 ms | p99 ms | added p50 ms | errors |\n|---|---:|---:|---:|---:|---:|")
    for name, r in c1.items():
        added = "—" if name == "direct" else f"{r.p50_ms - direct.p50_ms:.3f}"
        print(
            f"| {name} | {r.requests_per_second:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f}"
            f" | {added} | {r.errors} |"
        )
    if memory:
        print("\nMemory (VmRSS of the proxy's processes) with idle keep-alive connections")
        print(
            "| | connections | RSS before MiB | RSS holding MiB | KiB per connection |\n"
            "|---|---:|---:|---:|---:|"
        )
        for m in memory:
            print(
                f"| {m.name} | {m.held:,} | {m.before_kib / 1024:.1f} | {m.held_kib / 1024:.1f}"
                f" | {m.per_connection_kib:.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per -c64 row")
    parser.add_argument("--c1-duration", type=float, default=5.0, help="seconds per -c1 run")
    parser.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="idle connections")
    parser.add_argument("--quick", action="store_true", help="skip haproxy's memory run")
    parser.add_argument(
        "--attempts",
        type=int,
        default=2,
        help="runs of a row at most, while other processes disturb it (default: %(default)s)",
    )
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        _hold(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return
    options = parser.parse_args()
    if os.cpu_count() is not None and (os.cpu_count() or 0) < 2:
        raise SystemExit("two cores are needed: the proxy on one, wrk and the backend on the other")
    run(options.duration, options.c1_duration, options.idle, options.quick, options.attempts)


if __name__ == "__main__":
    main()
