"""The ``gpuplan`` command line.

Exit codes: 0 success (for ``check``: the decision is valid), 1 the decision is invalid,
2 unreadable or invalid input (a message names the file, field path and value; no
traceback, no partial output).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from solver.errors import InputError

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_INPUT = 0, 1, 2

#: Modules contributing sub-commands; each defines ``register(subparsers)``.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "solver.commands",
    "solver.sim.cli",
    "solver.whatif",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpuplan",
        description="Decide which jobs run where, when and at what power on a GPU cluster, "
        "and prove how good the decision is.",
        epilog="Run 'gpuplan COMMAND --help' for the options of a command. "
        "Exit codes: 0 ok, 1 invalid decision, 2 bad input.",
    )
    from solver import __version__

    parser.add_argument("--version", action="version", version=f"gpuplan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # optional command module not present in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpuplan`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130


def existing_file(text: str) -> Path:
    """argparse type: a path that must exist."""
    p = Path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return p


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
