"""``rdet.train``: the training loop, readable top to bottom.

    rdet.train("configs/quickstart/rotated-retinanet-rbox-le90_r18_fpn_synthetic.py", max_iters=200)
    rdet train CONFIG --set train.lr=0.01 [--resume] [--print-config]     # rdet.commands.train
    torchrun --nproc_per_node 2 -m rdet.cli train CONFIG                  # DistributedDataParallel

Schedule as the published configs: SGD (or AdamW), linear warm-up over ``warmup_iters`` from
``warmup_ratio * lr``, step decay by ``gamma`` at ``milestones`` (epochs; iterations when ``max_iters``),
gradient clipping. Every epoch writes ``epoch_N.pt`` and ``last.pt`` atomically (config inside); an
interruption (Ctrl-C) writes ``last.pt`` of the last finished iteration; ``resume=True`` continues from
``last.pt`` exactly (data order and augmentations depend only on seed, epoch and sample index). A
non-finite loss stops training with the iteration and loss component named, after saving ``last_good.pt``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from rdet.checkpoint import read_checkpoint, save_checkpoint
from rdet.config import Config, apply_override, load_config, to_dict
from rdet.engine.data import build_loader, move_batch
from rdet.models.build import build_model
from rdet.utils.progress import Progress

# --------------------------------------------------------------------------- helpers


def resolve_config(config_or_path, overrides: dict | None = None, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """A Config from a path or a Config, with ``--set`` strings and keyword overrides applied.

    Keyword overrides name a field as ``section__field`` (``train__lr=0.01``) or by a field name that is
    unique across sections (``lr=0.01``, ``max_iters=100``).
    """
    config = load_config(config_or_path, sets) if not isinstance(config_or_path, Config) else config_or_path
    if isinstance(config_or_path, Config):
        for item in sets:
            apply_override(config, item)
    for key, value in (overrides or {}).items():
        path = key.replace("__", ".")
        if "." not in path:
            owners = [
                s
                for s in ("model", "data", "train", "distill")
                if getattr(config, s) is not None and hasattr(getattr(config, s), key)
            ]
            if len(owners) != 1:
                raise ValueError(
                    f"override {key!r}: "
                    + (
                        "no config field of that name"
                        if not owners
                        else f"ambiguous, name it as one of {[o + '__' + key for o in owners]}"
                    )
                )
            path = f"{owners[0]}.{key}"
        apply_override(config, f"{path}={value!r}")
    from rdet.config import validate

    return validate(config)


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


def plot_losses(log_path: Path, png_path: Path) -> None:
    """Loss-curve PNG from the JSONL log (one line per component)."""
    from rdet.plot import line_plot

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if '"loss"' in line]
    rows = [r for r in rows if r.get("kind") == "train"]
    if len(rows) < 2:
        return
    keys = [k for k in rows[0] if k.startswith("loss")]
    series = {k: ([r["iter"] for r in rows], [r[k] for r in rows]) for k in keys}
    logy = all(v > 0 for _, ys in series.values() for v in ys)  # a zero loss (no objects) needs a linear axis
    line_plot(series, png_path, title="training loss", xlabel="iteration", ylabel="loss", logy=logy)


# --------------------------------------------------------------------------- the loop


def train(
    config_or_path, *, resume: bool = False, sets: list[str] | tuple[str, ...] = (), progress: bool = True, **overrides
) -> dict:
    """Train a detector. Returns ``{'work_dir', 'checkpoint', 'metrics', 'iterations'}``.

    Args:
        config_or_path: a :class:`~rdet.config.Config` or a config file.
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

    return fit(config, model, losses, device, rank, world, resume=resume, progress=progress, desc="train")


def fit(
    config: Config,
    model: torch.nn.Module,
    compute_losses,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    *,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> dict:
    """The loop shared by ``train`` and ``distill``.

    ``compute_losses(forward, batch) -> dict[str, Tensor]`` computes one batch's losses; ``forward`` is the model,
    wrapped in DistributedDataParallel under torchrun (call it once per step so gradients are synchronised).
    """
    t = config.train
    main = rank == 0
    work_dir = Path(t.work_dir)
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    optimizer = build_optimizer(config, model)
    loader, sampler = build_loader(config, "train", rank=rank, world=world)
    val_loader = build_loader(config, "val")[0] if config.data.val_images and t.eval_interval > 0 else None
    iters_per_epoch = len(loader)
    if iters_per_epoch == 0:
        raise ValueError(f"no training batches: {config.data.train_images!r} has fewer images than batch_size")
    epochs = math.ceil(t.max_iters / iters_per_epoch) if t.max_iters > 0 else t.epochs
    total = t.max_iters if t.max_iters > 0 else epochs * iters_per_epoch

    it, start_epoch = 0, 0
    last = work_dir / "last.pt"
    if resume and last.is_file():
        ckpt = read_checkpoint(last)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        it, start_epoch = ckpt["iteration"], ckpt["epoch"]
        if main:
            print(f"resumed from {last}: epoch {start_epoch}, iteration {it}")

    forward = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    amp = t.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    log = open(work_dir / "log.jsonl", "a") if main else None
    metrics: dict = {}
    bar = Progress(total, desc, enabled=progress and main)
    bar.n = it
    try:
        for epoch in range(start_epoch, epochs):
            model.train()
            if sampler is not None:
                sampler.set_epoch(epoch)
            loader.dataset.set_epoch(epoch)
            skip = it - epoch * iters_per_epoch  # batches of this epoch already done before a resume
            for i, batch in enumerate(loader):
                if i < skip:
                    continue
                if t.max_iters > 0 and it >= t.max_iters:
                    break
                lr = lr_at(config, it, epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    losses = compute_losses(forward, batch)
                bad = [k for k, v in losses.items() if not torch.isfinite(v)]
                if bad:
                    if main:
                        save_checkpoint(
                            work_dir / "last_good.pt", model, config, optimizer=optimizer, epoch=epoch, iteration=it
                        )
                    raise FloatingPointError(
                        f"non-finite loss at iteration {it} (epoch {epoch}): "
                        + ", ".join(f"{k}={losses[k].item()}" for k in bad)
                        + f"; the last good state is in {work_dir / 'last_good.pt'}"
                    )
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if t.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                it += 1
                values = {k: float(v.detach()) for k, v in losses.items()}
                bar.update()
                bar.set_postfix({"loss": float(loss.detach()), **values, "lr": lr})
                if main and (it % t.log_interval == 0 or it == 1):
                    log.write(
                        json.dumps(
                            {
                                "kind": "train",
                                "iter": it,
                                "epoch": epoch,
                                "lr": lr,
                                "loss": float(loss.detach()),
                                **values,
                                "time": time.time(),
                            }
                        )
                        + "\n"
                    )
                    log.flush()
            done_epoch = it // iters_per_epoch  # completed epochs; a resume skips the rest of a partial one
            if main:
                save_checkpoint(last, model, config, optimizer=optimizer, epoch=done_epoch, iteration=it)
                if it % iters_per_epoch == 0:
                    save_checkpoint(
                        work_dir / f"epoch_{epoch + 1}.pt",
                        model,
                        config,
                        optimizer=optimizer,
                        epoch=done_epoch,
                        iteration=it,
                    )
            if val_loader is not None and main and ((epoch + 1) % t.eval_interval == 0 or epoch + 1 == epochs):
                from rdet.engine.evaluate import evaluate_model

                result = evaluate_model(model, val_loader, progress=False)
                metrics = {"epoch": epoch + 1, "mAP50": result.map_at(0.5), "mAP50_95": result.mean_map}
                log.write(json.dumps({"kind": "val", "iter": it, **metrics}) + "\n")
                log.flush()
                print(
                    f"\nepoch {epoch + 1}: mAP50 {100 * metrics['mAP50']:.2f} %  "
                    f"mAP50:95 {100 * metrics['mAP50_95']:.2f} % (log.jsonl: fractions)"
                )
            if t.max_iters > 0 and it >= t.max_iters:
                break
    except KeyboardInterrupt:
        if main:
            save_checkpoint(last, model, config, optimizer=optimizer, epoch=it // iters_per_epoch, iteration=it)
            print(f"\ninterrupted: state of iteration {it} saved to {last}; continue with resume=True")
        raise
    finally:
        bar.close()
        if log is not None:
            log.close()
    if main:
        plot_losses(work_dir / "log.jsonl", work_dir / "loss.png")
    if world > 1:
        dist.barrier()
    return {"work_dir": str(work_dir), "checkpoint": str(last), "metrics": metrics, "iterations": it}
