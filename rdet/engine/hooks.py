"""What happens around the training steps: logging, checkpoints, evaluation (``rdet.engine.train.fit``).

A hook sees the :class:`~rdet.engine.train.Trainer` and may act at four points::

    hook.before_train()                     # after a resume, before the first step
    for each epoch:
        for each step: trainer.train_step(batch); hook.after_step()
        hook.after_epoch()                  # the epoch's last step is done (or max_iters reached)
    hook.after_train()                      # normal end only
    hook.on_interrupt()                     # Ctrl-C (then the KeyboardInterrupt propagates)
    hook.close()                            # always, last

Hooks run in the order given; only the main process (rank 0) writes files.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from torch.utils.data import DataLoader

from rdet.checkpoint import save_weights
from rdet.utils.progress import Progress

if TYPE_CHECKING:
    from rdet.engine.train import Trainer

EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


class HookBase:
    """A hook: override the points it needs (module docstring)."""

    trainer: Trainer

    def before_train(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def on_interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


class LogHook(HookBase):
    """The progress bar, and ``work_dir/log.jsonl``: one JSON line per ``log_interval`` steps (and the first).

    A resumed run first drops the lines of iterations after the checkpoint it resumes from (they are
    trained again), so the log never holds an iteration twice.
    """

    def __init__(self, desc: str, progress: bool):
        self.desc, self.progress = desc, progress
        self.file: TextIO | None = None
        self.bar: Progress | None = None

    def before_train(self) -> None:
        tr = self.trainer
        self.bar = Progress(tr.total, self.desc, enabled=self.progress and tr.main)
        self.bar.n = tr.iteration
        if not tr.main:
            return
        path = tr.work_dir / "log.jsonl"
        kept = []
        if tr.resumed and path.is_file():  # lines past the checkpoint are trained again: drop them
            kept = [line for line in path.read_text().splitlines() if _iteration(line) <= tr.iteration]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)
        self.file = open(path, "a")

    def after_step(self) -> None:
        tr, values, loss = self.trainer, self.trainer.last_losses, self.trainer.last_loss
        assert self.bar is not None
        self.bar.update()
        self.bar.set_postfix({"loss": loss, **values, "lr": tr.lr})
        if self.file is not None and (tr.iteration % tr.config.train.log_interval == 0 or tr.iteration == 1):
            row = {"kind": "train", "iter": tr.iteration, "epoch": tr.epoch, "lr": tr.lr, "loss": loss, **values}
            self.write({**row, "time": time.time()})

    def write(self, row: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.file is not None:
            self.file.close()
            self.file = None


class CheckpointHook(HookBase):
    """``last.pt`` after every epoch (and on Ctrl-C), ``epoch_N.pt`` after every completed epoch (the newest
    ``train.keep_checkpoints`` kept), a weights-only ``model.pt`` at the end.

    An ``epoch_N.pt`` lost to an interruption while it was written is written again by the resumed run
    (it resumes exactly at the end of epoch N, so its state is that epoch's).
    """

    def before_train(self) -> None:
        tr = self.trainer
        if tr.main and tr.resumed and tr.iteration > 0 and tr.iteration % tr.iters_per_epoch == 0:
            epoch = tr.iteration // tr.iters_per_epoch
            if not (tr.work_dir / f"epoch_{epoch}.pt").is_file():
                self.save_epoch(epoch)

    def after_epoch(self) -> None:
        tr = self.trainer
        if not tr.main:
            return
        tr.save(tr.work_dir / "last.pt")
        if tr.iteration % tr.iters_per_epoch == 0:  # a whole epoch (max_iters may stop mid-epoch)
            self.save_epoch(tr.iteration // tr.iters_per_epoch)

    def save_epoch(self, epoch: int) -> None:
        tr, keep = self.trainer, self.trainer.config.train.keep_checkpoints
        if keep > 0:
            tr.save(tr.work_dir / f"epoch_{epoch}.pt")
        for old in tr.work_dir.iterdir():
            match = EPOCH_FILE.match(old.name)
            if match and int(match.group(1)) <= epoch - keep:
                old.unlink()

    def after_train(self) -> None:
        tr = self.trainer
        if tr.main:
            save_weights(tr.work_dir / "model.pt", tr.model, tr.config)

    def on_interrupt(self) -> None:
        tr = self.trainer
        if tr.main:
            last = tr.work_dir / "last.pt"
            tr.save(last)
            print(f"\ninterrupted: state of iteration {tr.iteration} saved to {last}; continue with resume=True")


class EvalHook(HookBase):
    """DOTA mAP on the validation split every ``train.eval_interval`` epochs and after the last epoch."""

    def __init__(self, log: LogHook):
        self.log = log
        self.loader: DataLoader | None = None
        self.metrics: dict = {}

    def before_train(self) -> None:
        tr = self.trainer
        if tr.main and tr.config.data.val_images and tr.config.train.eval_interval > 0:
            from rdet.engine.data import build_loader

            self.loader = build_loader(tr.config, "val")[0]
        # resumed at the end of an epoch whose evaluation was interrupted (last.pt is written before it): run it now
        if self.loader is not None and tr.resumed and tr.iteration > 0 and tr.iteration % tr.iters_per_epoch == 0:
            done = tr.iteration // tr.iters_per_epoch
            if self._due(done) and not self._logged(done):
                self._evaluate(done)

    def after_epoch(self) -> None:
        done = self.trainer.epoch + 1
        if self.loader is not None and self._due(done):
            self._evaluate(done)

    def _due(self, done: int) -> bool:
        return done % self.trainer.config.train.eval_interval == 0 or done == self.trainer.epochs

    def _logged(self, done: int) -> bool:
        log = self.trainer.work_dir / "log.jsonl"
        lines = log.read_text().splitlines() if log.is_file() else []
        return any('"val"' in line and json.loads(line).get("epoch") == done for line in lines)

    def _evaluate(self, done: int) -> None:
        from rdet.engine.evaluate import evaluate_model

        tr = self.trainer
        result = evaluate_model(tr.model, self.loader, progress=False)
        self.metrics = {"epoch": done, "mAP50": result.map_at(0.5), "mAP50_95": result.mean_map}
        self.log.write({"kind": "val", "iter": tr.iteration, **self.metrics})
        print(
            f"\nepoch {done}: mAP50 {100 * self.metrics['mAP50']:.2f} %  "
            f"mAP50:95 {100 * self.metrics['mAP50_95']:.2f} % (log.jsonl: fractions)"
        )


class PlotHook(HookBase):
    """``work_dir/loss.png``, the loss curves of ``log.jsonl``, at the end."""

    def after_train(self) -> None:
        tr = self.trainer
        if tr.main:
            plot_losses(tr.work_dir / "log.jsonl", tr.work_dir / "loss.png")


def plot_losses(log_path: Path, png_path: Path) -> None:
    """Loss-curve PNG from the JSONL log (one line per loss component; nothing for fewer than 2 points)."""
    from rdet.plot import line_plot

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if '"loss"' in line]
    rows = [r for r in rows if r.get("kind") == "train"]
    if len(rows) < 2:
        return
    keys = [k for k in rows[0] if k.startswith("loss")]
    series = {k: ([r["iter"] for r in rows], [r[k] for r in rows]) for k in keys}
    logy = all(v > 0 for _, ys in series.values() for v in ys)  # a zero loss (no objects) needs a linear axis
    line_plot(series, png_path, title="training loss", xlabel="iteration", ylabel="loss", logy=logy)


def _iteration(line: str) -> float:
    """The ``iter`` of a log line; a torn line (killed while writing) counts as after everything."""
    try:
        return float(json.loads(line)["iter"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def epoch_checkpoints(work_dir: str | Path) -> list[Path]:
    """The ``epoch_N.pt`` files of a work dir, by epoch."""
    found = [(int(m.group(1)), p) for p in Path(work_dir).glob("epoch_*.pt") if (m := EPOCH_FILE.match(p.name))]
    return [p for _, p in sorted(found)]
