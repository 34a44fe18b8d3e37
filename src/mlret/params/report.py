"""From pydantic's multi-line report to one :class:`MlretError` naming the key, the value and the fix.

pydantic's report never reaches the user. A section's own checks raise
:func:`invalid`, which carries the reason and the fix through pydantic to
:func:`as_mlret_error`; every other problem (a wrong type, a value out of
range, an unknown or missing key) is worded here from pydantic's error type.
"""

from __future__ import annotations

import difflib
import types
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from mlret.errors import MlretError


def invalid(reason: str, fix: str, *, key: str = "", value: Any = ...) -> PydanticCustomError:
    """A failed check, printed as ``<where>.<key> = <value> <reason>.`` with ``fix`` under it.

    ``key`` is relative to where the validator runs (empty: that place itself).
    """
    return PydanticCustomError("mlret", "{reason}", {"reason": reason, "fix": fix, "key": key, "value": value})


def refusal(path: str, reason: str, fix: str, value: Any = ...) -> MlretError:
    """A failed check of ``path``: ``<path> = <value> <reason>.`` (``<path>: <reason>.`` without one) and the fix."""
    what = f"{path}: {reason}." if value is ... else f"{path} = {show(value)} {reason}."
    return MlretError(what, fix)


_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_MAPPING = ("dict_type", "dataclass_type", "dataclass_exact_type")
_KINDS = {  # error type prefix -> (what the value is not, how to write one)
    "int_": ("an integer", "a whole number"),
    "float_": ("a number", "a number"),
    "bool_": ("true or false", "`true` or `false`"),
    "string_type": ("a string", "a string (quote it)"),
    "list_type": ("a list", "a list, e.g. `[a, b]`"),
}
_ELSEWHERE = {  # top-level keys a user may look for (`-S seed=1`): where that setting lives
    "seed": "Remove it: each training run's seed is `runs.{key}.seed` and the article split's is `data.split.seed`.",
    "strategies": "Remove it: the training grid is `runs:`, one entry per strategy × profile × seed, "
    "e.g. `mono-balanced-0: {strategy: mono, profile: balanced, seed: 0}`.",
    "seeds": "Remove it: each training run's seed is `runs.{key}.seed`; add a run per seed under `runs:`.",
}
_BOUNDS = {  # error type -> (bound in ctx, reason, fix)
    "greater_than": ("gt", "must be above {}", "a value above {}"),
    "greater_than_equal": ("ge", "must be at least {}", "{} or more"),
    "less_than": ("lt", "must be below {}", "a value below {}"),
    "less_than_equal": ("le", "must be at most {}", "{} or less"),
}
_HINTS = {  # appended to the fix for these keys
    "bases.*.pooling": " (`mean` for e5 and sentence-transformers models, `cls` for LaBSE)",
    "train.precision": " (`auto` unless you need bitwise-reproducible fp32)",
    "index.type": " (`flat` is exact; `hnsw` and `ivf` are approximate)",
    "profiles": ", e.g. `balanced: {default: 1.0}`",
    "runs": ", e.g. `e5-hybrid-balanced-0: {base: e5, strategy: hybrid, profile: balanced, seed: 0}`",
}


def as_mlret_error(err: ValidationError, root: type, prefix: tuple[str, ...]) -> MlretError:
    """The most useful problem of ``err``: an unknown key first, since it often explains a missing one."""
    problems = err.errors(include_url=False)
    first = min(problems, key=lambda p: p["type"] not in _UNKNOWN_KEY)
    loc = tuple(part for part in first["loc"] if part != "[key]")
    kind, value, ctx = first["type"], first.get("input"), first.get("ctx") or {}
    path = _path(prefix + loc)
    hint = _HINTS.get(path, _HINTS.get(_path(("bases", "*", *loc[2:])) if loc[:1] == ("bases",) else "", ""))
    if kind == "mlret":
        key = tuple(ctx["key"].split(".")) if ctx["key"] else ()
        return refusal(_path(prefix + loc + key), ctx["reason"], ctx["fix"], ctx["value"])
    if kind in _UNKNOWN_KEY:
        return _unknown_key(root, prefix, loc, value)
    if kind == "missing":
        return MlretError(f"{_path(prefix + loc[:-1])}: `{loc[-1]}` is missing.", f"Set `{path}` in params.yaml.")
    if kind in _MAPPING:
        return MlretError(
            f"{path} is not a mapping (got {show(value)}).", f"Write `{path}` as a mapping of `key: value` entries."
        )
    shown = f"{path} = {show(value)}"
    for start, (noun, example) in _KINDS.items():
        if kind.startswith(start):
            return MlretError(f"{shown} is not {noun}.", f"Give `{path}` {example}.")
    if kind in ("enum", "literal_error"):
        return MlretError(f"{shown} is not one of {ctx['expected']}.", f"Use one of {ctx['expected']}{hint}.")
    if kind == "greater_than" and ctx["gt"] == 0:
        noun = "integer" if _declared(root, loc) is int else "number"
        return MlretError(f"{shown} must be a positive {noun}.", f"Set `{path}` to a value above 0.")
    if kind in _BOUNDS:
        bound, reason, target = _BOUNDS[kind]
        limit = _number(ctx[bound])
        return MlretError(f"{shown} {reason.format(limit)}.", f"Set `{path}` to {target.format(limit)}.")
    if kind == "finite_number":
        return MlretError(f"{shown} is not a finite number.", f"Give `{path}` a finite number.")
    if kind in ("too_short", "string_too_short"):
        return MlretError(
            f"{path} is empty.",
            f"Give `{path}` at least one entry{hint}." if kind == "too_short" else f"Give `{path}` a value.",
        )
    return MlretError(f"{shown}: {first['msg']}.", "See the params.yaml shipped with the project for a valid value.")


def _unknown_key(root: type, prefix: tuple[str, ...], loc: tuple[Any, ...], value: Any) -> MlretError:
    what = f"{_path(prefix + loc)}: unknown key (set to {show(value)})."
    section, key = prefix + loc[:-1], str(loc[-1])
    if not section and key in _ELSEWHERE:
        return MlretError(what, _ELSEWHERE[key])
    known = _known_keys(root, loc[:-1])
    if not known:
        return MlretError(what, f"Remove it: `{_path(section)}` takes no keys (leave it `{{}}`).")
    guess = did_you_mean(key, known, _path(section) if section else "")
    return MlretError(what, f"{guess or 'Remove it. '}Keys of {_path(section)}: {', '.join(known)}.")


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) and text else (f".{part}" if text else str(part))
    return text or "params.yaml"


def show(value: Any) -> str:
    shown = repr(str(value) if isinstance(value, Enum) else value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def did_you_mean(key: str, known: list[str], parent: str) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"Did you mean `{parent + '.' if parent else ''}{close[0]}`? " if close else ""


def _declared(root: type, loc: tuple[Any, ...]) -> Any:
    """The type declared for the value at ``loc`` (None if the walk leaves the declarations)."""
    kind: Any = _strip(root)
    for part in loc:
        fields = _fields_of(kind)
        if fields is not None:
            kind = fields.get(str(part))
        elif get_origin(kind) in (dict, list):
            kind = get_args(kind)[-1]
        else:
            return None
        kind = _strip(kind)
    return kind


def _known_keys(root: type, loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` takes (its ``KEY_FIELD`` is its key in the file, not one of them)."""
    kind = _declared(root, loc)
    fields = _fields_of(kind) or {}
    return [name for name in fields if name != getattr(kind, "KEY_FIELD", None)]


def _fields_of(kind: Any) -> dict[str, Any] | None:
    fields = getattr(kind, "__pydantic_fields__", None) if isinstance(kind, type) else None
    return None if fields is None else {name: info.annotation for name, info in fields.items()}


def _strip(kind: Any) -> Any:
    """``T`` out of ``Annotated[T, ...]`` and ``T | None``."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, types.UnionType):
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        else:
            return kind
