"""A time limit on symbolic work: sympy can take unbounded time on adversarial expressions."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SYMBOLIC_SECONDS = 5.0


class SymbolicTimeout(Exception):
    """Symbolic work ran past its time limit; the caller falls back to a simpler method."""


# After the first expiry the timer fires again at this interval until the block ends: an exception
# raised inside a garbage-collector callback or a finalizer is swallowed by Python (printed as
# "Exception ignored in ..."), and a one-shot timer would then leave the symbolic work unbounded.
REPEAT_SECONDS = 0.05


@contextmanager
def time_limit(seconds: float = SYMBOLIC_SECONDS) -> Iterator[None]:
    """Raise `SymbolicTimeout` in the block after `seconds` of CPU time (main thread only; elsewhere
    no limit). CPU time, not wall time, so a busy machine does not change what the lowering emits."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    armed = True

    def _expire(signum: int, frame: object) -> None:
        if armed:
            raise SymbolicTimeout()

    previous = signal.signal(signal.SIGVTALRM, _expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds, REPEAT_SECONDS)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
