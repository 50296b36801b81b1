from typing import Any

import anyio
import anyio.lowlevel
import pytest
import structlog.testing

from meshgate.gateway.events import EventEmitter


def test_handlers_get_the_details_in_order() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    emitter = EventEmitter()
    emitter.on("circuit:open", lambda d: seen.append(("first", d)))
    emitter.on("circuit:open", lambda d: seen.append(("second", d)))
    emitter.emit("circuit:open", {"route": "payments"})
    assert seen == [("first", {"route": "payments"}), ("second", {"route": "payments"})]


def test_an_unknown_event_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="circuit:open"):
        EventEmitter().on("circuit:opened", print)


def test_a_failing_handler_is_logged_and_the_others_run() -> None:
    seen: list[str] = []

    def broken(details: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    emitter = EventEmitter()
    emitter.on("route:added", broken)
    emitter.on("route:added", lambda d: seen.append(d["route"]))
    with structlog.testing.capture_logs() as logs:
        emitter.emit("route:added", {"route": "users"})
    assert seen == ["users"]
    assert logs[0]["event"] == "gateway.event_handler_failed"


def test_off_removes_a_handler() -> None:
    seen: list[str] = []
    emitter = EventEmitter()
    emitter.on("route:removed", seen.append)  # type: ignore[arg-type]
    emitter.off("route:removed", seen.append)  # type: ignore[arg-type]
    emitter.emit("route:removed", {"route": "users"})
    assert seen == []


@pytest.mark.anyio
async def test_coroutine_handlers_run_in_the_attached_task_group() -> None:
    seen: list[str] = []

    async def handler(details: dict[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(details["route"])

    emitter = EventEmitter()
    emitter.on("instance:up", handler)
    async with anyio.create_task_group() as tg:
        emitter.attach(tg)
        emitter.emit("instance:up", {"route": "users"})
    assert seen == ["users"]
