"""``rdet.train``: the training loop, readable top to bottom.

    rdet.train("configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py", max_iters=200)
    rdet train CONFIG --set train.lr=0.01 [--resume] [--print-config]     # rdet.commands.train
    torchrun --nproc_per_node 2 -m rdet.cli train CONFIG                  # DistributedDataParallel

Schedule as the published configs: SGD (or AdamW), linear warm-up over ``warmup_iters`` from
``warmup_ratio * lr``, step decay by ``gamma`` at ``milestones`` (epochs; iterations when ``max_iters``),
gradient clipping, mixed precision on CUDA (``train.amp``).

:func:`fit` is the loop: :meth:`Trainer.train_step` per batch, then end-of-epoch hooks
(:mod:`rdet.engine.hooks`): every epoch writes ``last.pt`` and ``epoch_N.pt`` atomically (config inside; the
newest ``train.keep_checkpoints`` epoch files are kept), the end writes a weights-only ``model.pt`` for
serving. An interruption (Ctrl-C) writes ``last.pt`` of the last finished iteration; ``resume=True`` continues
from ``last.pt`` exactly (data order and augmentations depend only on seed, epoch and sample index). A
non-finite loss stops training with the iteration and loss component named, after saving ``last_good.pt``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import threading
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from rdet.checkpoint import load_state, read_checkpoint, save_checkpoint
from rdet.config import Config, apply_override, load_config, resolve_paths, to_dict, validate
from rdet.data.dataset import RotatedDataset
from rdet.engine.data import build_loader, move_batch
from rdet.engine.hooks import CheckpointHook, EvalHook, HookBase, LogHook, PlotHook
from rdet.models.build import build_model

# --------------------------------------------------------------------------- helpers


def _override_path(config: Config, key: str) -> str:
    """``section__field`` -> ``section.field``; a bare field name must be unique across the sections."""
    path = key.replace("__", ".")
    if "." in path:
        return path
    owners = [
        s
        for s in ("model", "data", "train", "distill")
        if getattr(config, s) is not None and hasattr(getattr(config, s), key)
    ]
    if len(owners) != 1:
        found = (
            "no config field of that name"
            if not owners
            else f"ambiguous, name it as one of {[o + '__' + key for o in owners]}"
        )
        raise ValueError(f"override {key!r}: {found}")
    return f"{owners[0]}.{key}"


def resolve_config(config_or_path, overrides: dict | None = None, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """A Config from a path or a Config, with ``--set`` strings and keyword overrides applied, validated once.

    Keyword overrides name a field as ``section__field`` (``train__lr=0.01``) or by a field name that is
    unique across sections (``lr=0.01``, ``max_iters=100``). Paths in overrides, and relative paths of a
    Config built in code, are relative to the current folder.
    """
    if isinstance(config_or_path, Config):
        config = config_or_path
        for item in sets:
            apply_override(config, item)
    else:
        config = load_config(config_or_path, sets, check=False)
    for key, value in (overrides or {}).items():
        apply_override(config, f"{_override_path(config, key)}={value!r}")
    return validate(resolve_paths(config, Path.cwd()))


def lr_at(config: Config, it: int, epoch: int) -> float:
    """Learning rate of iteration ``it`` (0-based) in ``epoch`` (0-based)."""
    t = config.train
    step_at = it if t.max_iters > 0 else epoch
    lr = t.lr * t.gamma ** sum(step_at >= m for m in t.milestones)
    if it < t.warmup_iters:  # linear warm-up (mmengine LinearLR by iteration)
        lr *= t.warmup_ratio + (1 - t.warmup_ratio) * it / t.warmup_iters
    return lr


def build_optimizer(config: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def setup_device(config: Config) -> tuple[torch.device, int, int]:
    """Device, rank and world size; joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    want = config.train.device
    cuda = torch.cuda.is_available() and want != "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={want!r} but CUDA is not available")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(want if want.startswith("cuda:") else f"cuda:{local}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return device, rank, world


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


# --------------------------------------------------------------------------- the loop

#: ``compute_losses(forward, batch) -> {name: scalar Tensor}``; ``forward`` is the model, wrapped in
#: DistributedDataParallel under torchrun (call it once per step so gradients are synchronised).
ComputeLosses = Callable[[Callable, dict], dict]


def train(
    config_or_path, *, resume: bool = False, sets: list[str] | tuple[str, ...] = (), progress: bool = True, **overrides
) -> dict:
    """Train a detector. Returns ``{'work_dir', 'checkpoint', 'model', 'metrics', 'iterations'}``.

    Args:
        config_or_path: a :class:`~rdet.config.Config` or a config file (or a shipped config's name).
        resume: continue from ``work_dir/last.pt`` if it exists.
        sets: ``"section.field=value"`` overrides, as ``--set``.
        overrides: keyword overrides (``max_iters=100``, ``train__lr=0.01``, ``work_dir='runs/x'``).
    """
    config = resolve_config(config_or_path, overrides, sets)
    device, rank, world = setup_device(config)
    seed_everything(config.train.seed + rank, config.train.deterministic)
    model = build_model(config).to(device)

    def losses(forward, batch):
        images, targets = move_batch(batch, device)
        return forward(images, targets)  # forward with targets returns the loss dict

    trainer = Trainer(config, model, losses, device, rank, world)
    return fit(trainer, resume=resume, progress=progress, desc="train")


class Trainer:
    """The state of a run (model, optimizer, loader, iteration, epoch) and one training step.

    Attributes:
        iteration: steps done; epoch: the current epoch (0-based); last_loss, last_losses: the last step's
            total loss and its components.
        resumed: the run continued from ``last.pt``.
    """

    def __init__(
        self,
        config: Config,
        model: torch.nn.Module,
        compute_losses: ComputeLosses,
        device: torch.device,
        rank: int = 0,
        world: int = 1,
    ):
        t = config.train
        self.config, self.model, self.compute_losses, self.device = config, model, compute_losses, device
        self.main, self.world = rank == 0, world
        self.work_dir = Path(t.work_dir)
        self.optimizer = build_optimizer(config, model)
        self.loader, self.sampler = build_loader(config, "train", rank=rank, world=world)
        self.dataset = typing.cast(RotatedDataset, self.loader.dataset)
        self.iters_per_epoch = len(self.loader)
        if self.iters_per_epoch == 0:
            raise ValueError(f"no training batches: {config.data.train_images!r} has fewer images than batch_size")
        self.epochs = math.ceil(t.max_iters / self.iters_per_epoch) if t.max_iters > 0 else t.epochs
        self.total = t.max_iters if t.max_iters > 0 else self.epochs * self.iters_per_epoch
        self.forward = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
        self.amp = t.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.iteration, self.epoch, self.lr, self.resumed = 0, 0, t.lr, False
        self.last_loss, self.last_losses = 0.0, dict[str, float]()  # the last step's total and components

    def resume(self) -> None:
        """Continue from ``work_dir/last.pt`` (model, optimizer, AMP scaler, iteration, epoch), if it exists."""
        last = self.work_dir / "last.pt"
        if not last.is_file():
            return
        ckpt = read_checkpoint(last)
        # one-line CheckpointError naming the file when the config changed since (another width, classes ...)
        load_state(getattr(self.model, "module", self.model), ckpt["model"], last, self.config.name)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.iteration, self.epoch, self.resumed = ckpt["iteration"], ckpt["epoch"], True
        if self.main:
            print(f"resumed from {last}: epoch {self.epoch}, iteration {self.iteration}")

    def save(self, path: Path) -> None:
        """A full checkpoint of the current state (``last.pt``, ``epoch_N.pt``, ``last_good.pt``)."""
        extra = {"scaler": self.scaler.state_dict()} if self.amp else None
        save_checkpoint(
            path,
            self.model,
            self.config,
            optimizer=self.optimizer,
            epoch=self.iteration // self.iters_per_epoch,  # completed epochs: a resume skips the rest of one
            iteration=self.iteration,
            extra=extra,
        )

    @property
    def finished(self) -> bool:
        return self.iteration >= self.total

    def epoch_batches(self) -> Iterator[dict]:
        """The batches of ``self.epoch`` still to train: after a resume, the ones done are skipped."""
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        self.dataset.set_epoch(self.epoch)
        skip = self.iteration - self.epoch * self.iters_per_epoch
        for i, batch in enumerate(self.loader):
            if self.finished:
                return
            if i >= skip:
                yield batch

    def train_step(self, batch: dict) -> None:
        """One optimisation step: learning rate, forward (AMP), NaN check, backward, clip, step."""
        t = self.config.train
        self.lr = lr_at(self.config, self.iteration, self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            losses = self.compute_losses(self.forward, batch)
        bad = [k for k, v in losses.items() if not torch.isfinite(v)]
        if bad:
            good = self.work_dir / "last_good.pt"
            if self.main:
                self.save(good)
            raise FloatingPointError(
                f"non-finite loss at iteration {self.iteration} (epoch {self.epoch}): "
                + ", ".join(f"{k}={losses[k].item()}" for k in bad)
                + f"; the last good state is in {good}"
            )
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        self.last_loss = float(loss.detach())
        self.last_losses = {k: float(v.detach()) for k, v in losses.items()}


@contextlib.contextmanager
def _whole_step() -> Iterator[None]:
    """Ctrl-C during a step takes effect after it: an interrupt between the optimizer's update and the iteration
    count would save updated weights under the old iteration, and the resumed run would apply the step twice."""
    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # handlers can be set from the main thread only; a caller's own SIGINT handling is left alone
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def fit(tr: Trainer, *, resume: bool = False, progress: bool = True, desc: str = "train") -> dict:
    """The loop shared by ``train`` and ``distill``: ``train_step`` per batch, hooks at the end of each epoch.

    Returns ``{'work_dir', 'checkpoint' (last.pt), 'model' (weights-only model.pt), 'metrics', 'iterations'}``.
    """
    config, model = tr.config, tr.model
    if tr.main:
        tr.work_dir.mkdir(parents=True, exist_ok=True)
        (tr.work_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    if resume:
        tr.resume()
    log = LogHook(desc, progress)
    evaluation = EvalHook(log)
    hooks: list[HookBase] = [log, CheckpointHook(), evaluation, PlotHook()]
    for hook in hooks:
        hook.trainer = tr
    call = lambda point: [getattr(h, point)() for h in hooks]  # noqa: E731
    try:
        call("before_train")
        for epoch in range(tr.iteration // tr.iters_per_epoch, tr.epochs):
            tr.epoch = epoch
            model.train()
            for batch in tr.epoch_batches():
                with _whole_step():
                    tr.train_step(batch)
                    call("after_step")
            call("after_epoch")
            if tr.finished:
                break
        call("after_train")
    except KeyboardInterrupt:
        call("on_interrupt")
        raise
    finally:
        call("close")
    if tr.world > 1:
        dist.barrier()
    work_dir = tr.work_dir
    return {
        "work_dir": str(work_dir),
        "checkpoint": str(work_dir / "last.pt"),
        "model": str(work_dir / "model.pt"),
        "metrics": evaluation.metrics,
        "iterations": tr.iteration,
    }
