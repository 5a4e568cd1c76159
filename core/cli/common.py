"""The command line's frame: shared options, the parser, and the edge where errors are caught.

Expected failures (bad input, missing model, unknown collection) print one line to stderr and
exit with status 2; nothing already stored is lost. The commands live beside this module:
:mod:`core.cli.collections`, :mod:`core.cli.runs`, :mod:`core.cli.quality` and :mod:`core.cli.visual`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from core import config
from core.errors import USER_ERRORS, InvalidArgumentError
from core.progress import ProgressEvent

logger = logging.getLogger("core.cli")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a Unix tool stopped by `| head`


# -- shared options ---------------------------------------------------------------------------
def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help=f"SQLite index file (default: $WEBSSL_DB or {config.default_db_path()})",
    )


def add_model_options(p: argparse.ArgumentParser, *, bound: bool = False) -> None:
    """``--model`` and friends; ``bound``: the command works on a collection, whose model is the default."""
    g = p.add_argument_group("model")
    default = "the collection's own model" if bound else f"$WEBSSL_MODEL or {config.DEFAULT_MODEL_ID}"
    g.add_argument(
        "--model",
        default=None,
        help=f"Hub id or local folder of a DINOv2-family model (default: {default})",
    )
    g.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    g.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    g.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="fp32 (default, exact), bf16/fp16 (faster where supported), int8 (CPU), "
        "auto (int8 on CPUs with VNNI/AMX, else bf16 or fp32)",
    )
    g.add_argument("--batch-size", type=int, default=None, help="images per forward pass")


def open_index(args: argparse.Namespace, *, write: bool = False, create: bool = False):
    """The index named by ``--db`` / ``$WEBSSL_DB`` (see :func:`core.api.open_index`).

    Commands that only read open it read-only (nothing is ever written, so read-only files
    work); ``write`` opens an existing file for writing; only ``create`` makes a new file.
    """
    from core import api

    return api.open_index(args.db, write=write, create=create)


def shown(text: object) -> str:
    """Text from files or the database, safe to print: control characters (a newline in a
    file name, say) are escaped, so they cannot forge output lines."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in str(text)
    )


EXIT_DECLINED = 1  # the user answered no to a question: nothing was done


def add_yes_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before deleting (scripts)")


def confirmed(args: argparse.Namespace, question: str) -> bool:
    """Whether to go on with something that deletes stored data: ``--yes``, or the user's yes on
    a terminal. Without a terminal to ask on, ``--yes`` is required.

    Raises:
        InvalidArgumentError: no ``--yes`` and standard input is not a terminal.
    """
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise InvalidArgumentError(f"{question} Add --yes to confirm: there is no terminal to ask on.")
    answer = input(f"{question} [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("nothing deleted")
    return False


def model_label(args: argparse.Namespace, collection=None) -> str:
    """The model a command uses: ``--model`` if given, else the collection's, else the default
    (the rule is :func:`core.api.bound_model`: a differing ``--model`` is refused before loading).

    Raises:
        db.ModelMismatchError: ``--model`` names another model than the collection's.
    """
    from core import api

    return api.bound_model(collection, args.model, getattr(args, "revision", None))


def model_options(args: argparse.Namespace) -> dict:
    """``--model``, ``--revision``, ``--device``, ``--precision`` and ``--batch-size`` as keyword
    arguments of :mod:`core.api` (``-q`` also silences the model download's progress bars)."""
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    names = ("model", "revision", "device", "precision", "batch_size")
    return {name: getattr(args, name, None) for name in names}


def load_extractor(args: argparse.Namespace, model: str | None = None, precision: str | None = None):
    """Load the model (``model``: a label from :func:`model_label`; default: ``--model`` or the default)."""
    return extractor_on_demand(args, model, precision).get()


def extractor_on_demand(args: argparse.Namespace, model: str | None = None, precision: str | None = None):
    """The model as :func:`load_extractor` names it, loaded when its weights are first needed
    (:func:`core.api.model_on_demand`)."""
    from core import api

    options = model_options(args)
    return api.model_on_demand(
        model or model_label(args),
        device=options["device"],
        precision=options["precision"] or precision,
        batch_size=options["batch_size"],
    )


class TqdmProgress:
    """A progress callback that draws a tqdm bar on stderr (rate and ETA included)."""

    def __init__(self) -> None:
        self.stage = ""
        self.bar = None

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm import tqdm

        if self.bar is not None and event.stage != self.stage:  # a new stage gets a bar of its own
            self.bar.close()
            self.bar = None
        if not event.unit:  # a stage without a count (loading the collection…): one line
            if event.stage != self.stage:
                tqdm.write(event.headline, file=sys.stderr)
            self.stage = event.stage
            return
        if self.bar is None:
            self.stage = event.stage
            self.bar = tqdm(
                total=event.total, desc=event.stage, unit=f" {event.unit}", dynamic_ncols=True, leave=True
            )
        self.bar.update(event.done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def progress_bar(args: argparse.Namespace) -> Iterator[TqdmProgress | None]:
    """A tqdm progress callback (``None`` with ``-q``): a bar per stage, named after it."""
    bar = None if getattr(args, "quiet", False) else TqdmProgress()
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


# -- the parser -------------------------------------------------------------------------------
def common_options(*, nested: bool = False) -> argparse.ArgumentParser:
    """``-v`` / ``-q`` for every command (``nested``: SUPPRESS defaults, so that ``render -q
    layers`` and ``render layers -q`` both work)."""
    common = argparse.ArgumentParser(add_help=False)
    default_v, default_q = (argparse.SUPPRESS, argparse.SUPPRESS) if nested else (0, False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default_v,
        help="more log output (-vv for debug, -vvv for the libraries' debug too)",
    )
    common.add_argument("-q", "--quiet", action="store_true", default=default_q, help="no progress bars")
    return common


OWN_LOGGERS = ("core", "db", "dashboard", "bench")


def configure_logging(verbose: int) -> None:
    """Log to stderr, one line a record: warnings only by default; ``-v`` adds the project's info,
    ``-vv`` its debug and the libraries' info, ``-vvv`` the libraries' debug too (matplotlib's font
    search and the like, which would otherwise bury the project's own lines)."""
    own = max(logging.DEBUG, logging.WARNING - 10 * verbose)
    libraries = max(logging.DEBUG, logging.WARNING - 10 * max(verbose - 1, 0))
    logging.basicConfig(level=libraries, format="%(levelname)s %(name)s: %(message)s")
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(own)
    logging.captureWarnings(True)  # library warnings become one log line each, not console dumps


def build_parser() -> argparse.ArgumentParser:
    from core.cli import collections, library, quality, runs, visual

    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Index images with a Web-SSL DINO ViT and find where they appear in videos.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for module in (collections, runs, quality, library, visual):
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", 0))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, not at exit, where a reader that went away is a traceback
        return code
    except BrokenPipeError:
        # the output's reader went away (`runs | head -1`): stop quietly, as Unix tools do, with
        # what is left to print sent nowhere (Python flushes stdout once more at exit)
        with suppress(OSError, ValueError):  # stdout without a file (embedded)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished batches are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
