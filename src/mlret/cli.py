"""The ``mlret`` command: ``mlret search ...`` runs ``python -m mlret.search ...``.

Each subcommand is a module with its own ``main(argv)``; it is imported only
when named, so ``mlret --help`` answers without loading torch or FAISS.
"""

from __future__ import annotations

import importlib
import sys

from mlret.errors import MlretError, cli_errors

COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("mlret.search", "search a built index with a trained model"),
}

USAGE = "usage: mlret COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(
    f"  {name:<10}{summary} (`mlret {name} --help`)" for name, (_, summary) in COMMANDS.items()
)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    if args[0] in ("-h", "--help"):
        print(USAGE)
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        raise MlretError(f"unknown command {name!r}.", f"Use one of: {', '.join(COMMANDS)} (see `mlret --help`).")
    module, _ = COMMANDS[name]
    importlib.import_module(module).main(rest)


if __name__ == "__main__":
    main()
