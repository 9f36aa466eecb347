"""A dependency-free progress bar for long work (training, splitting, tiled inference).

Writes one refreshed line to stderr: ``desc  42% |#####     | 42/100 [00:12<00:16, 3.4it/s] loss=0.31``.
When stderr is not a terminal (CI logs), it prints a new line at most every ``log_every`` seconds instead of
carriage-return updates, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Progress over ``total`` steps. Use as a context manager; ``update(n)``, ``set_postfix(dict)``."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        enabled: bool = True,
        width: int = 20,
        log_every: float = 10.0,
        stream=None,
    ):
        self.total, self.desc, self.enabled, self.width = total, desc, enabled, width
        self.n = 0
        self.postfix: dict[str, object] = {}
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.log_every = log_every
        self.start = time.perf_counter()
        self._last = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def set_postfix(self, values: dict[str, object]) -> None:
        self.postfix = dict(values)
        self._draw()

    def close(self) -> None:
        self._draw(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        post = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items())
        if self.total:
            frac = min(self.n / self.total, 1.0)
            fill = int(frac * self.width)
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            bar = f"{frac:4.0%} |{'#' * fill}{' ' * (self.width - fill)}| {self.n}/{self.total}"
            timing = f"[{_fmt_time(elapsed)}<{_fmt_time(eta)}, {rate:.3g}it/s]"
        else:
            bar, timing = f"{self.n}it", f"[{_fmt_time(elapsed)}, {rate:.3g}it/s]"
        return " ".join(x for x in (self.desc, bar, timing, post) if x)

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if force or now - self._last > 0.1:
                self.stream.write("\r" + self.line())
                self.stream.flush()
                self._last = now
        elif force or now - self._last > self.log_every:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last = now


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Iterate ``iterable`` while showing a progress bar on stderr."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
