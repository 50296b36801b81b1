"""Operators' requests on ``mesh.control.canary.<route>``: the leader alone
answers, persists and broadcasts what it did; with no leader a request
finds no responders at once; `meshgate rollout` prints the outcome."""

from __future__ import annotations

import argparse
import time

import anyio
import anyio.to_thread
import pytest

from canary_node import rollout_command
from meshgate.bus.connection import Bus
from meshgate.bus.errors import NoRespondersError
from meshgate.bus.messages import ControlAction, ControlReply, ControlRequest
from meshgate.bus.nats_server import NatsServer
from tests.integration.canary.cluster import (
    LEASE_TTL,
    canary_config,
    controllers,
    lease_holder,
    stored_snapshot,
    watch_broadcasts,
)
from tests.integration.canary.conftest import Connect
from tests.polling import eventually

pytestmark = pytest.mark.anyio


async def control(bus: Bus, route: str, action: ControlAction) -> ControlReply:
    request = ControlRequest(route=route, action=action)
    return await bus.request(bus.subjects.canary_control(route), request, ControlReply)


async def test_pause_resume_and_rollback_are_answered_persisted_and_broadcast(
    bus: Bus, connect: Connect
) -> None:
    broadcasts = await watch_broadcasts(bus)
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            await eventually(lambda: bool(broadcasts.reminders("orders")))
            paused = await control(bus, "orders", "pause")
            assert (paused.ok, paused.changed, paused.state) == (True, True, "paused")
            assert (paused.canary_weight, paused.stable_weight, paused.step) == (10.0, 90.0, -1)
            snapshot = await stored_snapshot(bus, "orders")
            assert snapshot is not None
            assert snapshot.state == "paused"
            again = await control(bus, "orders", "pause")
            assert (again.ok, again.changed) == (True, False)
            resumed = await control(bus, "orders", "resume")
            assert (resumed.ok, resumed.state) == (True, "active")
            rolled_back = await control(bus, "orders", "rollback")
            assert (rolled_back.state, rolled_back.canary_weight) == ("rolled-back", 0.0)
            await eventually(lambda: len(broadcasts.decisions("orders")) == 3)
        tg.cancel_scope.cancel()
    assert [kind for kind, _, _ in broadcasts.kinds("orders")] == ["pause", "resume", "rollback"]
    assert broadcasts.decisions("orders")[0].reason == "paused by hand"


async def test_unknown_routes_and_finished_rollouts_are_refused_with_a_code(
    bus: Bus, connect: Connect
) -> None:
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            await _until_answered(bus)
            unknown = await control(bus, "users", "promote")
            assert (unknown.ok, unknown.code) == (False, "not_found")
            assert unknown.error is not None
            assert "'orders'" in unknown.error
            promoted = await control(bus, "orders", "promote")
            assert (promoted.ok, promoted.state, promoted.canary_weight) == (
                True,
                "promoted",
                100.0,
            )
            refused = await control(bus, "orders", "rollback")
            assert (refused.ok, refused.code, refused.state) == (False, "invalid", "promoted")
        tg.cancel_scope.cancel()


async def test_without_a_controller_a_request_finds_no_responders(bus: Bus) -> None:
    with pytest.raises(NoRespondersError):
        await control(bus, "orders", "pause")


async def test_only_the_leader_answers_and_the_successor_answers_once_it_leads(
    bus: Bus, connect: Connect
) -> None:
    async with anyio.create_task_group() as tg:
        async with controllers(
            tg, connect, canary_config("orders"), "canary-a", "canary-b"
        ) as nodes:
            reply = await _until_answered(bus)
            assert reply.ok
            holder = await lease_holder(bus)
            [leader] = [node for node in nodes if node.name == holder]
            await leader.kill()
            # Let the server drop the dead connection's subscriptions; the lease
            # lasts at least TTL - renew_every (1.3 s) longer.
            await anyio.sleep(0.2)
            # The standby does not answer while it stands by ...
            with pytest.raises(NoRespondersError):
                await control(bus, "orders", "pause")
            killed = time.monotonic()
            # ... and answers, with the persisted state, once the lease is its own.
            reply = await _until_answered(bus, within=LEASE_TTL + 3)
            assert time.monotonic() - killed <= LEASE_TTL + 1.5
            assert (reply.ok, reply.changed, reply.state) == (True, False, "paused")
            assert await lease_holder(bus) != holder
        tg.cancel_scope.cancel()


async def _until_answered(bus: Bus, within: float = 5.0) -> ControlReply:
    with anyio.fail_after(within):
        while True:
            try:
                return await control(bus, "orders", "pause")
            except NoRespondersError:
                await anyio.sleep(0.05)


def rollout(nats_server: NatsServer, prefix: str, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    rollout_command.configure(parser)
    args = parser.parse_args([*argv, "--nats", nats_server.url, "--prefix", prefix])
    return rollout_command.run(args)


async def test_meshgate_rollout_prints_the_outcome_and_exits_by_it(
    bus: Bus,
    connect: Connect,
    nats_server: NatsServer,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The command configures the process's logging; this process is pytest's.
    monkeypatch.setattr(rollout_command, "configure_logging", lambda level: None)

    async def run_rollout(*argv: str) -> tuple[int, str, str]:
        # `run` starts an event loop of its own: off this one's thread.
        code = await anyio.to_thread.run_sync(rollout, nats_server, prefix, *argv)
        out, err = capsys.readouterr()
        # The controllers in this process log to stdout too; keep the command's line.
        answer = [line for line in out.splitlines() if line.startswith("orders: ")]
        return code, "\n".join(answer), err.strip()

    code, _, err = await run_rollout("orders", "pause")
    assert code == 1
    assert "no canary controller leads" in err
    async with anyio.create_task_group() as tg:
        async with controllers(tg, connect, canary_config("orders"), "canary-a"):
            await _until_answered(bus)  # pauses it
            code, out, _ = await run_rollout("orders", "resume")
            assert (code, out) == (
                0,
                "orders: resumed (state active, canary 10%, stable 90%, current_step -1)",
            )
            code, out, _ = await run_rollout("orders", "resume")
            assert (code, out.split(" (")[0]) == (0, "orders: already active")
            code, _, err = await run_rollout("users", "promote")
            assert code == 2
            assert "route 'users' has no canary" in err
            code, out, _ = await run_rollout("orders", "rollback")
            assert (code, out.split(" (")[0]) == (0, "orders: rolled back")
            code, _, err = await run_rollout("orders", "promote")
            assert code == 1
            assert "already rolled-back" in err
        tg.cancel_scope.cancel()
