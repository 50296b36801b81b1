"""Event loop choice: uvloop where it is installed (several times faster for
the proxy's protocol callbacks), plain asyncio otherwise. Everything in this
package works on both."""

from __future__ import annotations

import asyncio
import importlib.util


def fast_loop_available() -> bool:
    """Whether uvloop can be imported here."""
    return importlib.util.find_spec("uvloop") is not None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop if available, else a new default asyncio loop.

    >>> loop = new_event_loop()
    >>> loop.run_until_complete(asyncio.sleep(0))
    >>> loop.close()
    """
    if fast_loop_available():
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def install_fast_loop() -> bool:
    """Make `asyncio.run` and friends use uvloop; returns whether it did.

    Call it once at process start, before any loop exists::

        install_fast_loop()
        asyncio.run(main())
    """
    if not fast_loop_available():
        return False
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True
