"""Strict parsing of the text in label files: lines, numbers, and the record of what lenient mode skipped.

Every value is validated where it is read, so that a failure names the file and the line (or the XML object):

* lines are split on ``\\n`` and ``\\r\\n`` only (``str.splitlines`` also splits on ``\\x0c``, ``\\x85``,
  ``\\u2028``..., which shifts every line number after them);
* tokens are separated by ASCII blanks (space, tab, ``\\r``, ``\\f``, ``\\v``);
* a number is ASCII decimal text (``12``, ``-3.5``, ``1e3``): Python's ``float``/``int`` also accept ``١٠``
  (Arabic-Indic digits), ``１０`` (full-width), ``1_0``, ``inf`` and ``nan``, which no label tool writes;
* every number is checked to be finite and in its range before it is converted (no ``OverflowError``).
"""

from __future__ import annotations

import re
import warnings

_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT = re.compile(r"[+-]?[0-9]+")
_BLANKS = re.compile(r"[^ \t\r\f\v]+")

# Beyond 1e9 px is no image coordinate (and would overflow float32 later).
MAX_COORD = 1e9


def lines(text: str) -> list[str]:
    """``text`` split on ``\\n`` / ``\\r\\n`` only (line ``k`` of the list is line ``k + 1`` of the file)."""
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


def tokens(line: str) -> list[str]:
    """Fields of a line, separated by ASCII blanks only."""
    return _BLANKS.findall(line)


def is_float(token: str) -> bool:
    """Whether ``token`` is ASCII decimal number text."""
    return _FLOAT.fullmatch(token) is not None


def parse_float(token: str, what: str, lo: float = -MAX_COORD, hi: float = MAX_COORD) -> float:
    """ASCII decimal ``token`` -> float in ``[lo, hi]``; ``ValueError('<what> ...')`` otherwise."""
    if not _FLOAT.fullmatch(token):
        raise ValueError(f"{what} must be a decimal number, got {token[:40]!r}")
    v = float(token)
    if not lo <= v <= hi:
        raise ValueError(f"{what} must lie in [{lo:g}, {hi:g}], got {token[:40]}")
    return v


def parse_int(token: str, what: str, lo: int, hi: int) -> int:
    """ASCII decimal integer ``token`` -> int in ``[lo, hi]`` (the range is checked on the text's length first,
    so ``99999999999999999999`` is an error, not an overflow later)."""
    if not _INT.fullmatch(token):
        raise ValueError(f"{what} must be an integer, got {token[:40]!r}")
    if len(token.lstrip("+-").lstrip("0")) > 18:
        raise ValueError(f"{what} must lie in [{lo}, {hi}], got {token[:40]}")
    v = int(token)
    if not lo <= v <= hi:
        raise ValueError(f"{what} must lie in [{lo}, {hi}], got {token[:40]}")
    return v


class Issues:
    """Collects malformed entries: raises at the first in strict mode, else records ``file:where: reason``."""

    def __init__(self, source: str, strict: bool):
        self.source, self.strict = source, strict
        self.skipped: list[str] = []

    def bad(self, where: int | str, reason: str, text: str = "") -> None:
        msg = f"{self.source}:{where}: {reason}" + (f": {text[:80]!r}" if text else "")
        if self.strict:
            raise ValueError(msg)
        self.skipped.append(msg)


def warn_skipped(skipped: list[str]) -> None:
    """One warning listing every skipped entry (lenient mode)."""
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} malformed label entr{'y' if len(skipped) == 1 else 'ies'}:\n  "
            + "\n  ".join(skipped),
            stacklevel=3,
        )
