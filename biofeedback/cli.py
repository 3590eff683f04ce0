"""The ``biofeedback`` command line.

Every user mistake is reported as one line, ``biofeedback: error: …``,
with exit status 2 and no traceback (see :mod:`biofeedback.errors`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from biofeedback import __version__
from biofeedback.commands import COMMANDS
from biofeedback.errors import BiofeedbackError


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults in --help and keep the description's line breaks."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse prints usage + message and exits 2; keep that, one line.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = _Parser(
        prog="biofeedback",
        description="Surface-EMG biofeedback: simulate, analyse, record and give live feedback.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"biofeedback {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name, _ in COMMANDS:
        module = importlib.import_module(f"biofeedback.commands.{module_name}")
        module.register(sub, _Formatter)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BiofeedbackError as exc:
        print(f"biofeedback {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"biofeedback {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
