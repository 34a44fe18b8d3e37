"""The one exception type users see.

Every failure a researcher can fix (a bad parameter, a corrupt file, a missing
model) is raised as :class:`MlretError` with *what* went wrong and *how* to fix
it. Stage entry points catch it and print those two lines instead of a
traceback, so a pipeline run fails with a message rather than a stack dump.

A full disk or a read-only output folder is just as fixable, but it surfaces
as an ``OSError`` from whichever library happened to be writing (Python,
pandas, pyarrow, torch, FAISS); :func:`cli_errors` turns those into the same
two lines, naming the file and the way out.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar


class MlretError(Exception):
    """A problem with input or configuration that the user can act on."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(what if fix is None else f"{what}\n       {fix}")


F = TypeVar("F", bound=Callable[..., object])

_NO_SPACE = "Free space on that disk (or move the output folder to one with room) and re-run the stage."
_NO_QUOTA = "Your disk quota is used up: free space within it (or ask for a larger one) and re-run the stage."
_NOT_WRITABLE = (
    "Check the permissions of the output folder (it must be writable by you, on a writable disk) and re-run the stage."
)
_NOT_A_FOLDER = "A part of that path is a file where a folder is expected: move the file away or fix the path."
_OS_FIXES = {
    errno.ENOSPC: _NO_SPACE,
    errno.ENOTDIR: _NOT_A_FOLDER,
    errno.EROFS: _NOT_WRITABLE,
    errno.EACCES: _NOT_WRITABLE,
    errno.EPERM: _NOT_WRITABLE,
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _OS_FIXES[errno.EDQUOT] = _NO_QUOTA
_OS_FALLBACK_FIX = "Set MLRET_DEBUG=1 and re-run to see where it happened."


def os_error(err: OSError) -> MlretError:
    """The user-facing form of an operating-system error: ``<path>: <reason>`` and a fix.

    The reason is the system's own wording for the error number (libraries
    such as pyarrow wrap it in longer text); the path is whatever file the
    failing call named, which is absent for some calls (e.g. a write on an
    already open file), so writers that know their target should set it.
    """
    reason = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    what = f"{' -> '.join(paths)}: {reason}" if paths else reason
    return MlretError(what, _OS_FIXES.get(err.errno or 0, _OS_FALLBACK_FIX))


def cli_errors(main: F) -> F:
    """Turn :class:`MlretError` and ``OSError`` into `error: ...` on stderr and exit status 1.

    Set ``MLRET_DEBUG=1`` to get the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return main(*args, **kwargs)
        except BrokenPipeError:
            # The reader went away (`mlret search ... | head`): nothing to tell it; stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None
        except (MlretError, OSError) as err:
            if os.environ.get("MLRET_DEBUG"):
                raise
            shown = os_error(err) if isinstance(err, OSError) else err
            print(f"error: {shown}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
