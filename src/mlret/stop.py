"""Stopping a stage on a signal, or when the process that launched it is gone.

The loop polls :attr:`StopRequests.reason` after each step, so a stop always
leaves an exact, resumable checkpoint. Stages without steps to stop between
(encode, evaluate) use :func:`stop_with_launcher`: their outputs are written
atomically, so stopping them anywhere leaves no half-written file.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlret.errors import MlretError


class StopRequests:
    """SIGTERM and SIGINT, and under DVC the exit of the launching process, as a reason the loop polls between steps.

    Stopping between steps keeps every checkpoint exact. A second signal gets
    the previous handler (an immediate stop); the last saved checkpoint then
    still stands, since saves are atomic. DVC does not forward a SIGTERM it
    receives to its stage command, so a killed ``dvc repro`` would otherwise
    leave the training running on as an orphan.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}
        self._launcher_gone = _launcher_watch()

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = self.signal or signal.Signals(signum).name
        for other, previous in self._previous.items():
            signal.signal(other, signal.SIG_DFL if previous is None else previous)

    @property
    def reason(self) -> str | None:
        if self.signal is None and self._launcher_gone is not None and self._launcher_gone():
            self.signal = "the exit of the process that started it"
        return self.signal


@contextlib.contextmanager
def stop_with_launcher(stage: str, poll_s: float = 1.0) -> Iterator[None]:
    """Under DVC, stop the block with :class:`MlretError` within ``poll_s`` of the launching process exiting.

    DVC does not forward the SIGTERM it receives, so a killed ``dvc repro``
    would otherwise leave the stage running on as an orphan, writing outputs
    nobody will record. A watcher thread interrupts the main thread (as
    Ctrl-C does, so ``finally`` blocks and atomic writers clean up); outside
    DVC, or off the main thread, the block runs unwatched.
    """
    gone = _launcher_watch()
    if gone is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    finished, interrupted = threading.Event(), threading.Event()
    # A simulated SIGINT reaches the main thread only where Python handles SIGINT. A process started
    # with it ignored (a background job of a non-interactive shell, nohup) would run on as an orphan,
    # so there the watch interrupts through SIGUSR1 and a handler of its own, for the block's length.
    interrupt = signal.SIGINT if callable(signal.getsignal(signal.SIGINT)) else signal.SIGUSR1
    previous = signal.signal(interrupt, signal.default_int_handler) if interrupt != signal.SIGINT else None

    def watch() -> None:
        while not finished.wait(poll_s):
            if gone():
                interrupted.set()
                _thread.interrupt_main(interrupt)
                return

    threading.Thread(target=watch, name=f"{stage}-launcher-watch", daemon=True).start()
    try:
        yield
    except KeyboardInterrupt:
        if not interrupted.is_set():
            raise
        raise MlretError(
            f"{stage} stopped by the exit of the process that started it; "
            "every file it finished is complete, the rest were not written.",
            "Run `dvc repro` again to redo the stage.",
        ) from None
    finally:
        finished.set()
        if interrupt != signal.SIGINT:
            signal.signal(interrupt, signal.SIG_DFL if previous is None else previous)


def _launcher_watch() -> Callable[[], bool] | None:
    """Under DVC (it sets DVC_STAGE), a check that the process that started the run has exited.

    The launcher is the parent (``dvc``, the stage's shell having exec'd us) or,
    under torchrun, the parent of the torchrun agent, as they were when this module was imported.
    """
    if "DVC_STAGE" not in os.environ:
        return None
    parent, grandparent = _STARTED_BY
    if parent == 1 and b"dvc" not in _cmdline(1):  # orphaned before this module was even imported
        return lambda: True
    agent_parent = grandparent if "TORCHELASTIC_RUN_ID" in os.environ else None
    return lambda: os.getppid() != parent or (agent_parent is not None and _parent_of(parent) != agent_parent)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent_of(pid: int) -> int | None:
    """A process's parent id, from /proc (Linux); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


# Taken at import, which the stage scripts do first: a launcher that dies while the stage is still loading
# (models, data) has already handed its children to pid 1 or a subreaper by the time the watch is set up.
_STARTED_BY = (os.getppid(), _parent_of(os.getppid()))
