"""``python -m benchmarks COMMAND``: run a benchmark and write its results table."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: Modules contributing benchmark commands; each defines ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = ("benchmarks.snapshot", "benchmarks.rootgap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="gpuplan benchmarks: run methods on generated instances and write Markdown/CSV/PNG results "
        "with the command, date, CPU and package versions.",
        epilog="Run 'python -m benchmarks COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and run the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.argv = argv
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
