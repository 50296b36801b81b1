"""How every meshgate process command ends: it runs its main coroutine on
asyncio, and turns the ways a start can fail into one line on stderr and an
exit code, rather than a traceback."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import anyio

from meshgate.bus.errors import BusAuthError, BusUnavailableError

EXIT_OK = 0
EXIT_USAGE = 2
"""A bad option or file, or NATS unreachable or refusing us: nothing was served."""


def run_process(
    command: str,
    main: Callable[[], Awaitable[None]],
    *,
    use_uvloop: bool = False,
    usage_errors: tuple[type[Exception], ...] = (ValueError,),
) -> int:
    """Run `main` until it returns (exit 0); exit 2 with ``meshgate COMMAND:
    <why>`` on stderr when it raises one of `usage_errors` or cannot use the
    bus. Ctrl-C before a process has installed its own signal handling (while
    it connects) is a clean exit too.

    >>> async def serve() -> None:
    ...     raise ValueError("--port 0 is not allowed")
    >>> run_process("example", serve)  # prints "meshgate example: --port 0 ..." to stderr
    2
    """
    try:
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": use_uvloop})
    except BusAuthError as exc:
        # Its message names the server and the options to check.
        print(f"meshgate {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BusUnavailableError as exc:
        print(f"meshgate {command}: {exc} (is nats-server running there?)", file=sys.stderr)
        return EXIT_USAGE
    except usage_errors as exc:
        print(f"meshgate {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK
