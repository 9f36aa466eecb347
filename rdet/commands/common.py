"""What every ``rdet <command>`` shares: its parser class, deprecated spellings, and how user errors are shown.

Rules (CONTRACTS.md item 6, issue 19.2):

* one vocabulary: ``--output`` (not ``--out``), ``--tile``/``--overlap`` (not ``--size``/``--gap``), ``--classes``
  (not ``--names``), ``--model`` (not a positional checkpoint), ``--max-pixels``; an old spelling still works and
  prints one ``note:`` line naming the new one;
* ``--help`` shows the default of every flag, and is fast: this module and the per-command parser modules import
  nothing heavy (no torch, numpy or cv2); the work is imported inside ``run`` after parsing;
* a user error (bad flag, missing file, a ``ValueError`` from the library) is ONE line on stderr,
  ``rdet <command>: error: <message>``, exit status 2, no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable

# What the library raises for bad input. Anything else (TypeError, IndexError, RuntimeError ...) is a bug and keeps
# its traceback. CheckpointError, ImageTooLargeError and ClassesError subclass ValueError.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)
EXIT_USAGE = 2


class UserError(ValueError):
    """A problem with what the user asked for, raised by the command layer itself (one line, exit 2)."""


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` after every flag that has one, keeps the description's line breaks, and hides the
    deprecated spellings of a flag (they still parse)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = (
            action.default is None
            or action.default is False
            or action.default == []
            or action.default is argparse.SUPPRESS
        )
        if "%(default)" in text or "default:" in text or nothing:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        old = getattr(action, "deprecated", ())
        if not old:
            return super()._format_action_invocation(action)
        saved = action.option_strings
        action.option_strings = [o for o in saved if o not in old]
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = saved


class Parser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose errors are one line (``rdet x: error: ... (see --help)``), exit 2."""

    def __init__(self, prog: str, description: str, epilog: str | None = None):
        super().__init__(prog=prog, description=description, epilog=epilog, formatter_class=Formatter)
        self.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    def error(self, message: str):
        print(f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)

    def _check_value(self, action, value):  # a shorter line than argparse's for long choice lists
        if action.choices is not None and value not in action.choices:
            name = "/".join(action.option_strings) or action.dest
            raise argparse.ArgumentError(
                None, f"{name}: invalid choice {value!r} (choose from {', '.join(map(str, action.choices))})"
            )


def doc_parts(doc: str | None) -> tuple[str, str]:
    """A command module's docstring -> (description, epilog): the first paragraph without its ````rdet x``: ````
    prefix, and the rest (examples, output layout)."""
    first, _, rest = (doc or "").strip().partition("\n\n")
    text = first.split(": ", 1)[-1].strip()
    return text[:1].upper() + text[1:], rest.strip("\n") + "\n"


def one_line(message: object) -> str:
    """A message on one line: inner line breaks become ``; ``."""
    parts = [p.strip() for p in str(message).splitlines() if p.strip()]
    return "; ".join(parts).replace(":; ", ": ")


def note(prog: str, message: str) -> None:
    """One ``<prog>: note: ...`` line on stderr (deprecations, things the user should know)."""
    print(f"{prog}: note: {one_line(message)}", file=sys.stderr)


class _Deprecating(argparse.Action):
    """Stores the value like ``store`` and prints a deprecation note when an old spelling was used."""

    def __init__(self, *args, deprecated: Iterable[str] = (), prog: str = "rdet", **kwargs):
        super().__init__(*args, **kwargs)
        self.deprecated = tuple(deprecated)
        self.prog = prog

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated:
            new = next(o for o in self.option_strings if o not in self.deprecated)
            note(self.prog, f"{option_string} is deprecated; use {new}")
        setattr(namespace, self.dest, values)


def add(parser, *names: str, deprecated: Iterable[str] = (), **kwargs) -> argparse.Action:
    """``parser.add_argument(*names, *deprecated, ...)``; the deprecated spellings parse, print a note and stay
    out of the help."""
    deprecated = tuple(deprecated)
    if not deprecated:
        return parser.add_argument(*names, **kwargs)
    prog = getattr(parser, "prog", None) or parser._container.prog  # an argument group: its parser's name
    return parser.add_argument(*names, *deprecated, action=_Deprecating, deprecated=deprecated, prog=prog, **kwargs)


def deprecated_positional(parser: Parser, dest: str) -> None:
    """An optional, hidden positional ``dest`` for an old command form (``rdet export CHECKPOINT``);
    :func:`take_positional` moves it to its flag."""
    parser.add_argument(dest, nargs="?", default=None, help=argparse.SUPPRESS)


def take_positional(parser: Parser, args: argparse.Namespace, dest: str, flag: str) -> None:
    """Move the old positional ``dest`` to the flag ``flag`` (with a note); both given is an error."""
    value = getattr(args, dest)
    if value is None:
        return
    attr = flag.lstrip("-").replace("-", "_")
    if getattr(args, attr) is not None:
        parser.error(f"give {flag} once (a positional {dest.upper()} is the old spelling of {flag})")
    note(parser.prog, f"a positional {dest.upper()} is deprecated; use {flag} {value}")
    setattr(args, attr, value)


def require(parser: Parser, args: argparse.Namespace, *flags: str) -> None:
    """Flags that are required but may also come from a deprecated spelling (argparse cannot check those)."""
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


DEFAULT_MAX_PIXELS = 1 << 29  # rdet.data.images.DEFAULT_MAX_PIXELS (tests/test_commands.py checks)


def add_max_pixels(parser: Parser) -> None:
    """``--max-pixels N``: the pixel budget per image (``max_pixels=`` of the readers)."""
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=None,
        metavar="N",
        help="refuse images of more than N pixels, checked from the header before decoding "
        f"(default: {DEFAULT_MAX_PIXELS:,}, sized for a 2-core / 24 GB machine)",
    )


def run_command(
    parser: Parser,
    run: Callable[[argparse.Namespace], int | None],
    argv: list[str] | None,
    keywords: dict[str, str] | None = None,
) -> int:
    """Parse ``argv``, call ``run(args)``, and turn user errors into one line on stderr with exit status 2.

    Args:
        keywords: Python keyword spellings in library messages -> the flag to name instead
            (``{"classes=": "--classes"}``), so an error names what the user can type.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RDET_DEBUG") == "1"
    try:
        args = parser.parse_args(argv)  # --help and usage errors end here (exit status 0 / 2)
        return int(run(args) or 0)
    except SystemExit as e:  # Parser.error inside run (a flag combination checked after parsing)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    except USER_ERRORS as e:
        if debug:
            raise
        message = str(e)
        for word, flag in (keywords or {}).items():
            message = message.replace(word, flag)
        print(f"{parser.prog}: error: {one_line(message)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


__all__ = [
    "USER_ERRORS",
    "EXIT_USAGE",
    "UserError",
    "Formatter",
    "Parser",
    "doc_parts",
    "one_line",
    "note",
    "add",
    "deprecated_positional",
    "take_positional",
    "require",
    "positive_int",
    "DEFAULT_MAX_PIXELS",
    "add_max_pixels",
    "run_command",
]
