"""Progress bars for long work (training, splitting, tiled inference), drawn by tqdm.

``Progress(total, desc)`` is a thin shell over ``tqdm.tqdm`` with the interface rdet's loops use
(``update``, ``set_postfix``, a settable ``n`` for resumed runs, ``close``, context manager). On a terminal
it refreshes one line on stderr (``desc  42%|####      | 42/100 [00:12<00:16, 3.4it/s, loss=0.31]``); when
stderr is not a terminal (CI logs, files) it writes a new line at most every ``log_every`` seconds instead
of carriage-return updates, so logs stay readable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _Lines:
    """A stream for tqdm that turns its carriage-return refreshes into whole lines (for logs)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip("\n")
        if line.strip():
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class Progress:
    """Progress over ``total`` steps (``None``: unknown). Use as a context manager; ``update(n)``,
    ``set_postfix(dict)``; ``n`` may be set (a resumed run starts at its iteration)."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        enabled: bool = True,
        log_every: float = 10.0,
        stream: TextIO | None = None,
    ):
        stream = stream if stream is not None else sys.stderr
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.bar = tqdm(
            total=total,
            desc=desc or None,
            disable=not enabled,
            file=stream if tty else _Lines(stream),
            mininterval=0.1 if tty else log_every,
            dynamic_ncols=tty,
            ascii=not tty,
            leave=True,
        )

    @property
    def n(self) -> int:
        return int(self.bar.n)

    @n.setter
    def n(self, value: int) -> None:
        self.bar.n = self.bar.last_print_n = value
        self.bar.refresh()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, values: dict[str, object]) -> None:
        self.bar.set_postfix(values, refresh=False)  # drawn at the next update: no extra refresh per step

    def line(self) -> str:
        """The current progress line, as shown."""
        return str(self.bar)

    def close(self) -> None:
        self.bar.close()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Iterate ``iterable`` while showing a progress bar on stderr."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, enabled) as bar:
        for item in iterable:
            yield item
            bar.update()
