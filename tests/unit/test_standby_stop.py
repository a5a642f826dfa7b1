"""A standby stops at SIGTERM: in a container it is PID 1, which ignores unhandled signals."""

import asyncio
import os
import signal
import time

from google_token_operator.runner import _while_alive


async def _forever() -> None:
    await asyncio.Event().wait()


async def _soon() -> None:
    await asyncio.sleep(0.01)


def test_sigterm_stops_a_waiting_standby_at_once() -> None:
    async def main() -> bool:
        asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)
        return await _while_alive(_forever(), 0)

    started = time.monotonic()
    assert asyncio.run(main()) is False
    assert time.monotonic() - started < 5
    # The handler is gone with the standby: kopf installs its own once it leads.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_standby_that_wins_the_lease_goes_on() -> None:
    assert asyncio.run(_while_alive(_soon(), 0)) is True
