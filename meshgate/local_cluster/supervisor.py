"""Runs the processes of a plan: starts them in their stages, waits until each
is ready, watches them, and stops every one of them on the way out — on
Ctrl-C, on SIGTERM, and when one fails to start (then it says which and why,
with the end of that process's log).

Each process writes to a log file of its own in `log_dir`; the launcher
prints one line per process and where the logs are.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import httpx

from meshgate.bus.protocol import MessageBus
from meshgate.discovery.backends.bus_client import RegistryClient
from meshgate.local_cluster.plan import ProcessSpec

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
ALIVE_AFTER = 1.0

Say = Callable[[str], None]


class StartFailedError(RuntimeError):
    """A process of the cluster did not start; the message says which and why."""


@dataclass
class Running:
    spec: ProcessSpec
    process: anyio.abc.Process
    log_file: Path
    ready: bool = False
    exited_reported: bool = False


@dataclass
class Supervisor:
    """The processes started so far, and how to stop them."""

    log_dir: Path
    say: Say = print
    running: list[Running] = field(default_factory=list)

    async def start_stage(self, stage: Sequence[ProcessSpec], bus: MessageBus | None) -> None:
        """Start every process of `stage` at once, and return when all are
        ready; raise `StartFailedError` when one exits or is not ready in time."""
        started = [await self._spawn(spec) for spec in stage]
        async with anyio.create_task_group() as tg:
            for entry in started:
                tg.start_soon(self._await_ready, entry, bus)

    async def watch(self) -> None:
        """Report processes that exit while the cluster runs (until cancelled)."""
        while True:
            for entry in self.running:
                code = entry.process.returncode
                if code is not None and not entry.exited_reported:
                    entry.exited_reported = True
                    self.say(
                        f"!! {entry.spec.name} exited with code {code}; the rest keep running. "
                        f"Last lines of {entry.log_file}:\n{_tail(entry.log_file)}"
                    )
            await anyio.sleep(0.5)

    async def stop_all(self) -> None:
        """SIGTERM every process, newest first (gateways drain before the
        services they call deregister), then SIGKILL what is left after
        `STOP_TIMEOUT` seconds."""
        for entry in reversed(self.running):
            if entry.process.returncode is None:
                entry.process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(STOP_TIMEOUT):
            for entry in reversed(self.running):
                await entry.process.wait()
        for entry in self.running:
            if entry.process.returncode is None:
                self.say(f"   {entry.spec.name} did not stop in {STOP_TIMEOUT:g}s: killed")
                entry.process.kill()
                await entry.process.wait()

    def kill_all(self) -> None:
        """SIGKILL every process still running, at once (a second Ctrl-C)."""
        for entry in self.running:
            if entry.process.returncode is None:
                entry.process.kill()

    @contextlib.contextmanager
    def hurried_by_signals(self) -> Iterator[None]:
        """While stopping, a further SIGINT or SIGTERM kills what is left
        instead of interrupting the launcher halfway through its stop, which
        would leave processes behind."""

        def hurry(signum: int, frame: object) -> None:
            self.say(f"   {signal.Signals(signum).name} again: killing what is left")
            self.kill_all()

        previous = {
            signum: signal.signal(signum, hurry) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    async def _spawn(self, spec: ProcessSpec) -> Running:
        log_file = self.log_dir / f"{spec.name}.log"
        with log_file.open("ab") as log:
            process = await anyio.open_process(
                list(spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # its own process group: the terminal's Ctrl-C reaches only the
                # launcher, which then stops the processes in order
                start_new_session=True,
            )
        entry = Running(spec, process, log_file)
        self.running.append(entry)
        return entry

    async def _await_ready(self, entry: Running, bus: MessageBus | None) -> None:
        spec = entry.spec
        with anyio.move_on_after(READY_TIMEOUT) as waiting:
            while not await self._is_ready(spec, bus):
                if entry.process.returncode is not None:
                    entry.exited_reported = True
                    raise StartFailedError(
                        f"{spec.name} exited with code {entry.process.returncode} while "
                        f"starting. Last lines of {entry.log_file}:\n{_tail(entry.log_file)}"
                    )
                await anyio.sleep(0.1)
        if waiting.cancelled_caught:
            raise StartFailedError(
                f"{spec.name} was not ready within {READY_TIMEOUT:g}s. "
                f"Last lines of {entry.log_file}:\n{_tail(entry.log_file)}"
            )
        if spec.ready == "alive" and entry.process.returncode is not None:
            raise StartFailedError(
                f"{spec.name} exited with code {entry.process.returncode} right after starting. "
                f"Last lines of {entry.log_file}:\n{_tail(entry.log_file)}"
            )
        entry.ready = True
        self.say(f"   ✓ {spec.name:<22} pid {entry.process.pid}")

    async def _is_ready(self, spec: ProcessSpec, bus: MessageBus | None) -> bool:
        if spec.ready == "alive":
            await anyio.sleep(ALIVE_AFTER)
            return True
        if spec.ready == "http":
            assert spec.url is not None
            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    return (await client.get(spec.url)).status_code == 200
            except httpx.HTTPError:
                return False
        assert bus is not None, "registry and service checks need the bus"
        registry = RegistryClient(bus, timeout=1.0)
        try:
            if spec.ready == "registry":
                await registry.get_services()
                return True
            assert spec.service is not None
            instances = await registry.get_instances(spec.service)
        except Exception:
            return False
        return any(instance.id == spec.instance_id for instance in instances)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "   (no log)"
    return "\n".join("   | " + line for line in text.splitlines()[-lines:])
