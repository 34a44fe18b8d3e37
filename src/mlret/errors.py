"""The one exception type users see.

Every failure a researcher can fix (a bad parameter, a corrupt file, a missing
model) is raised as :class:`MlretError` with *what* went wrong and *how* to fix
it. Stage entry points catch it and print those two lines instead of a
traceback, so a pipeline run fails with a message rather than a stack dump.
"""

from __future__ import annotations

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


def cli_errors(main: F) -> F:
    """Turn :class:`MlretError` into `error: ...` on stderr and exit status 1.

    Set ``MLRET_DEBUG=1`` to get the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return main(*args, **kwargs)
        except MlretError as err:
            if os.environ.get("MLRET_DEBUG"):
                raise
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]
