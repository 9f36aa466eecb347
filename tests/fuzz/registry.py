"""Fuzz targets: registration, outcome classification, and the runner shared by the tests and the report."""

from __future__ import annotations

import importlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.strategies import SearchStrategy

OUTCOMES = ("accepted", "clear error", "crash", "hang", "silently wrong")
# Modules that register targets.
MODULES = ("targets_labels", "targets_images", "targets_boxes", "targets_checkpoint", "targets_runner")


class SilentlyWrong(AssertionError):
    """Raised by a check when rdet returned without error but an invariant failed."""


class Hang(Exception):
    """The check ran past its time limit (report only)."""


@dataclass
class Target:
    """A fuzz target: ``strategy`` draws inputs, ``check(example)`` runs rdet on one and returns normally when the
    output is right (raising :class:`SilentlyWrong` when it is not). ``names`` are the strings a clear error must
    contain (file names the check used); ``errors`` the exception types that count as a clear error."""

    name: str
    strategy: SearchStrategy
    check: Callable
    errors: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
    where: Callable[[object], list[str]] = field(default=lambda example: [])


TARGETS: dict[str, Target] = {}


def target(name: str, strategy: SearchStrategy, errors=(ValueError, FileNotFoundError), where=None):
    """Decorator registering ``check(example)`` as the fuzz target ``name`` (see :class:`Target`)."""

    def wrap(check: Callable) -> Callable:
        TARGETS[name] = Target(name, strategy, check, tuple(errors), where or (lambda example: []))
        return check

    return wrap


def load() -> dict[str, Target]:
    """Import every module of ``MODULES`` (they register their targets) and return the registry."""
    for m in MODULES:
        importlib.import_module(f"{__package__}.{m}")
    return TARGETS


def classify(t: Target, example, time_limit: float | None = None) -> tuple[str, str]:
    """Run ``t.check(example)``: ``(outcome, detail)`` with outcome one of ``OUTCOMES``."""

    def on_alarm(signum, frame):
        raise Hang()

    old = None
    if time_limit:
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        t.check(example)
    except Hang:
        return "hang", f"> {time_limit} s"
    except SilentlyWrong as e:
        return "silently wrong", str(e)[:300]
    except t.errors as e:
        msg = str(e)
        names = t.where(example)
        if names and not any(n in msg for n in names):
            return "crash", f"{type(e).__name__} without location: {msg[:200]}"
        if "\n" in msg.strip() and "Traceback" in msg:
            return "crash", msg[:200]
        return "clear error", msg[:200]
    except Exception as e:  # noqa: BLE001 - every other exception is what the campaign looks for
        return "crash", f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        if time_limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return "accepted", ""


def run(t: Target, max_examples: int, seed: int = 0, time_limit: float | None = None, on_result=None) -> dict:
    """Draw ``max_examples`` inputs for ``t`` and classify each (the first without ``time_limit``: it pays the
    one-off warm-up); ``{outcome: count}`` plus ``'examples'`` (the first example of each bad outcome, for the
    report) and ``'seconds'``."""
    counts = {o: 0 for o in OUTCOMES}
    first: dict[str, str] = {}
    start = time.perf_counter()

    @hypothesis_seed(seed)
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(t.strategy)
    def body(example):
        # the first input pays one-off costs (torch.library op registration, imports): no time limit for it
        warm = sum(counts[o] for o in OUTCOMES) > 0
        outcome, detail = classify(t, example, time_limit if warm else None)
        counts[outcome] += 1
        if outcome in ("crash", "hang", "silently wrong") and outcome not in first:
            first[outcome] = f"{detail} <- {repr(example)[:200]}"
        if on_result is not None:
            on_result(outcome, detail, example)

    body()
    counts["examples"] = first
    counts["seconds"] = time.perf_counter() - start
    return counts
