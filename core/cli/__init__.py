"""The command line, ``python -m core <command> --help``: :mod:`~core.cli.common` (options, parser,
error edge), :mod:`~core.cli.collections`, :mod:`~core.cli.runs`, :mod:`~core.cli.visual`."""

from core.cli.common import main

__all__ = ["main"]
