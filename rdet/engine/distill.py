"""``rdet.distill``: train a student detector with localization (LD) and classification (KD) distillation.

    rdet.distill("configs/quickstart/ld_r18_r34_synthetic.py")
    rdet.distill(student="student.py", teacher="teacher.py", teacher_weights="work_dirs/t/last.pt", max_iters=100)
    rdet distill CONFIG [--teacher CFG] [--teacher-weights CKPT] [--set distill.ld_weight=5] [--resume]  # commands

The loop is :func:`rdet.engine.train.train`'s (same schedule, checkpoints, resume, logs, evaluation) with
two extra loss terms from :mod:`rdet.losses.ld`: every iteration the frozen teacher (eval mode, no
gradients, never updated) sees the *same augmented batch* as the student, and

    loss = loss_cls + loss_bbox + ld_weight * LD(positives + VLR) + kd_weight * KD(VLR)

The teacher is built from its own config (``distill.teacher``) and its checkpoint
(``distill.teacher_weights``); in a config file both are relative to that file, like every path
(``rdet.config``; ``from_cwd(...)`` for the current folder), given as arguments they are relative to the
current folder. A
teacher that cannot be paired with the student (class list, box convention, anchors, ``reg_max``/bins)
is a ``ValueError`` naming every mismatch, raised before any data is read.

Teacher-output cache (``distill.cache_dir``). Augmentations depend on (seed, epoch, sample index), so an
index alone is not a valid key. The cache is *content-addressed* instead: the key of an image is a hash of
the exact network input (the augmented, padded, normalised image tensor and its shape) and of its ground
truth, inside a folder named after a fingerprint of the teacher's weights and config and of the settings
that fix the distilled region. A hit is therefore exact by construction, whatever the augmentation, seed,
epoch or batch composition (the teacher is in eval mode, so an image's outputs do not depend on its batch
neighbours). Only the teacher outputs inside the distilled region (positives + VLR) are stored (a DOTA
image has ~200k anchors; its region a few thousand). Without random augmentation every epoch after the
first is served from disk; flips give at most 4 variants of each image; random rotation makes nearly
every input new, and the cache only costs disk (``rdet distill`` prints the hit rate).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from rdet.checkpoint import read_checkpoint
from rdet.config import Config, DistillConfig, class_names, load_config, to_dict
from rdet.engine.data import move_batch
from rdet.engine.train import Trainer, fit, resolve_config, seed_everything, setup_device
from rdet.losses.ld import kd_loss, ld_loss, vlr_weights
from rdet.models.build import build_model
from rdet.models.detector import DenseDetector

CACHE_VERSION = "rdet-ld-cache-1"
CLASS_REDUCTION = "mean"  # KL averaged over bins/classes: MMDetection's KnowledgeDistillationKLDivLoss


# --------------------------------------------------------------------------- teacher and checks


def check_compatible(student: Config, teacher: Config) -> None:
    """Raise ``ValueError`` listing every reason ``teacher`` cannot teach ``student``.

    Distillation compares outputs anchor by anchor and bin by bin, so both must share the class list (and
    order), the box convention and coder (what a delta means), the anchors, and ``reg_max`` with its bin
    ranges. Backbone, neck and head widths may differ: that is the point.
    """
    d = student.distill or DistillConfig()
    problems = []
    for who, cfg in (("student", student), ("teacher", teacher)):
        if cfg.model.type != "rotated_retinanet":
            problems.append(f"{who} model.type is {cfg.model.type!r}; distillation supports 'rotated_retinanet'")
    s_names, t_names = class_names(student), class_names(teacher)
    if s_names != t_names:
        problems.append(f"class lists differ: student {s_names} vs teacher {t_names}")
    sc, tc = student.model.coder, teacher.model.coder
    if sc.angle_version != tc.angle_version:
        problems.append(
            f"box conventions differ: student model.coder.angle_version={sc.angle_version!r} vs "
            f"teacher {tc.angle_version!r}"
        )
    for name, s, t in (
        ("model.coder", asdict(sc), asdict(tc)),
        ("model.anchors", asdict(student.model.anchors), asdict(teacher.model.anchors)),
    ):
        for key in s:
            if key != "angle_version" and s[key] != t[key]:
                problems.append(f"{name}.{key} differs: student {s[key]!r} vs teacher {t[key]!r}")
    sh, th = student.model.head, teacher.model.head
    if sh.reg_max != th.reg_max:
        problems.append(f"reg_max differs: student model.head.reg_max={sh.reg_max} vs teacher {th.reg_max}")
    elif sh.reg_max > 0:
        for key in ("reg_range", "angle_range"):
            if tuple(getattr(sh, key)) != tuple(getattr(th, key)):
                problems.append(f"model.head.{key} differs: student {getattr(sh, key)} vs teacher {getattr(th, key)}")
    if d.ld_weight > 0 and sh.reg_max == 0 and th.reg_max == 0:
        problems.append(
            "LD needs general-distribution heads: set model.head.reg_max > 0 (Rotated-LD: 8) in "
            "both configs, or distill.ld_weight=0 for KD only"
        )
    if problems:
        raise ValueError("teacher cannot teach this student:\n  " + "\n  ".join(problems))


def _check_distill(d: DistillConfig) -> None:
    if not d.temperature > 0:
        raise ValueError(f"config field distill.temperature: must be > 0, got {d.temperature}")
    for name in ("ld_weight", "kd_weight", "vlr_alpha"):
        if getattr(d, name) < 0:
            raise ValueError(f"config field distill.{name}: must be >= 0, got {getattr(d, name)}")


def resolve_teacher(
    config: Config, teacher=None, teacher_weights=None
) -> tuple[Config | None, Path | None, DenseDetector | None]:
    """The teacher's config, checkpoint path and (if given as a model) module, with paths resolved.

    Args:
        teacher: ``None`` (use ``distill.teacher``), a config file, a :class:`Config`, or a model (as
            returned by ``rdet.load_checkpoint``, with ``.config``).
        teacher_weights: a checkpoint (``None``: ``distill.teacher_weights``).
    """
    d = _section(config)
    if isinstance(teacher, nn.Module):
        if teacher_weights is not None:
            raise ValueError("give either a teacher model or teacher_weights, not both")
        if not isinstance(teacher, DenseDetector) or not isinstance(teacher.config, Config):
            raise ValueError("a teacher model needs its Config as .config (rdet.load_checkpoint sets it)")
        return teacher.config, None, teacher
    cfg = None
    if isinstance(teacher, Config):
        cfg = teacher
        d.teacher = teacher.source  # what the checkpoint will record ('' for a config built in code)
    else:
        path = teacher if teacher is not None else (d.teacher or None)
        if path is not None:
            path = Path(path).resolve()  # a config's distill.teacher is absolute already (load_config)
            if not path.is_file():
                raise FileNotFoundError(f"teacher config not found: {path}{_origin(config, teacher, 'teacher')}")
            cfg = load_config(path)
            d.teacher = str(path)
    weights = teacher_weights if teacher_weights is not None else (d.teacher_weights or None)
    if weights is None:
        raise ValueError(
            "no teacher weights: set distill.teacher_weights (a checkpoint of the trained teacher) "
            "or pass teacher_weights="
        )
    weights = Path(weights).resolve()
    if not weights.is_file():
        raise FileNotFoundError(
            f"teacher checkpoint not found: {weights}{_origin(config, teacher_weights, 'teacher_weights')}"
        )
    d.teacher_weights = str(weights)
    return cfg, weights, None


def _origin(config: Config, given, field: str) -> str:
    """Where a teacher path came from, for error messages."""
    if given is not None:
        return f" (given as {field}=, relative to the current folder {Path.cwd()})"
    where = f" in {config.source}" if config.source else ""
    return f" (distill.{field}{where}; config paths are relative to the config file, or use from_cwd(...))"


def _section(config: Config) -> DistillConfig:
    """``config.distill`` (``distill()`` adds one before anything reads it)."""
    if config.distill is None:
        raise ValueError(f"{config.source or 'config'}: no distill section")
    return config.distill


def teacher_fingerprint(teacher: DenseDetector, student: Config) -> str:
    """Hash of everything that fixes the cached values: teacher weights and config, region settings."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for key, value in sorted(teacher.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    d, head = _section(student), student.model.head
    region = {
        "teacher": to_dict(teacher.config.model) if teacher.config is not None else "",
        "anchors": asdict(student.model.anchors),
        "vlr_alpha": d.vlr_alpha,
        "vlr_horizontal": d.vlr_horizontal,
        "assign": [head.assign_iou, head.pos_iou_thr, head.neg_iou_thr, head.min_pos_iou],
    }
    h.update(json.dumps(region, sort_keys=True, default=str).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- teacher outputs


class Teacher:
    """The frozen teacher: outputs on the student's batch, online or through a content-addressed disk cache.

    ``outputs(images, region, keys)`` takes the student's pre-processed batch (``normalized=True`` inputs of
    the teacher's ``head_outputs``: both models use the ImageNet statistics) and returns ``cls [B, N, C]`` and
    ``reg [B, N, R]``; with a cache the values are exact inside ``region`` (``[B, N]`` bool) and 0 outside it
    (the losses weigh those by 0).
    """

    def __init__(self, model: DenseDetector, cache_dir: str | Path | None = None, fingerprint: str = ""):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.cache = Path(cache_dir) / fingerprint[:16] if cache_dir else None
        self.hits = self.misses = 0

    @staticmethod
    def keys(images: Tensor, targets: list[dict]) -> list[str]:
        """Content key per image: hash of the exact input tensor (with its shape) and its ground truth."""
        out = []
        for img, t in zip(images, targets):
            h = hashlib.blake2b(digest_size=20)
            for x in (img, t["boxes"], t["labels"]):
                x = x.detach().cpu().contiguous()
                h.update(str((tuple(x.shape), str(x.dtype))).encode())
                h.update(x.reshape(-1).view(torch.uint8).numpy().tobytes())
            out.append(h.hexdigest())
        return out

    @torch.no_grad()
    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model.head_outputs(images, normalized=True)
        return out.cls, out.reg

    @torch.no_grad()
    def outputs(self, images: Tensor, region: Tensor, keys: list[str] | None = None) -> tuple[Tensor, Tensor]:
        if self.model.training:  # someone called .train() on it: BatchNorm would update, outputs would drift
            raise RuntimeError("the teacher must stay in eval mode")
        if self.cache is None:
            return self._forward(images)
        if keys is None or len(keys) != images.shape[0]:
            raise ValueError("a cached teacher needs one key per image (Teacher.keys)")
        loaded = [self._load(key, region[b].nonzero().squeeze(1)) for b, key in enumerate(keys)]
        missing = [b for b, r in enumerate(loaded) if r is None]
        computed: dict[int, tuple[Tensor, Tensor]] = {}
        if missing:
            cls, reg = self._forward(images[missing])
            for j, b in enumerate(missing):
                idx = region[b].nonzero().squeeze(1)
                computed[b] = (cls[j, idx].float(), reg[j, idx].float())
                self._store(keys[b], idx, *computed[b])
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        rows = [computed[b] if r is None else r for b, r in enumerate(loaded)]
        c, r = rows[0]
        n = region.shape[1]
        cls_out = images.new_zeros((images.shape[0], n, c.shape[1]), dtype=torch.float32)
        reg_out = images.new_zeros((images.shape[0], n, r.shape[1]), dtype=torch.float32)
        for b, (c, r) in enumerate(rows):
            idx = region[b].nonzero().squeeze(1)
            cls_out[b, idx] = c.to(cls_out.device)
            reg_out[b, idx] = r.to(reg_out.device)
        return cls_out, reg_out

    def _path(self, key: str) -> Path:
        assert self.cache is not None  # only a caching teacher stores
        return self.cache / key[:2] / f"{key}.pt"

    def _load(self, key: str, idx: Tensor) -> tuple[Tensor, Tensor] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if not torch.equal(entry["index"], idx.cpu()):
            raise ValueError(
                f"teacher cache entry {path} holds another region than this batch computes: the "
                "cache is stale or corrupt; delete the folder"
            )
        return entry["cls"], entry["reg"]

    def _store(self, key: str, idx: Tensor, cls: Tensor, reg: Tensor) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # atomic: a reader never sees half a file
        torch.save({"index": idx.cpu(), "cls": cls.cpu(), "reg": reg.cpu()}, tmp)
        os.replace(tmp, path)


def build_teacher(config: Config, teacher=None, teacher_weights=None, device="cpu") -> tuple[Teacher, str]:
    """Resolve, check and load the teacher; returns it (frozen, eval mode, on ``device``) and its fingerprint."""
    from rdet.checkpoint import config_from_checkpoint, load_checkpoint

    cfg, weights, model = resolve_teacher(config, teacher, teacher_weights)
    if cfg is None:  # only a checkpoint: its stored config
        assert weights is not None  # resolve_teacher gives a model or a checkpoint
        cfg = config_from_checkpoint(read_checkpoint(weights), weights)
    check_compatible(config, cfg)  # before loading weights or reading data
    if model is None:
        assert weights is not None
        loaded = load_checkpoint(weights, config=cfg, device=str(device))
        assert isinstance(loaded, DenseDetector)
        model = loaded
    model = model.to(device)
    cache_dir = _section(config).cache_dir
    fingerprint = teacher_fingerprint(model, config) if cache_dir else ""
    return Teacher(model, cache_dir or None, fingerprint), fingerprint


# --------------------------------------------------------------------------- one step


def distill_losses(
    student: DenseDetector,
    images,
    targets: list[dict],
    teacher: Teacher,
    d: DistillConfig,
    forward=None,
) -> dict[str, Tensor]:
    """All losses of one batch: the student's own ``loss_cls``/``loss_bbox`` plus weighted ``loss_ld``/``loss_kd``.

    Args:
        student: the (unwrapped) RotatedRetinaNet; ``forward`` (default ``student``) runs its ``forward``,
            e.g. through DistributedDataParallel.
        images: the batch as ``model.loss`` takes it (uint8 images); pre-processed once, by the student, for
            both models.
        targets: as ``model.loss``.
        teacher: the frozen teacher; a caching one keys its entries by the pre-processed images
            (:meth:`Teacher.keys`).
    """
    x = student.preprocess_image(images)  # [B, 3, H, W]: the exact network input of both models
    keys = Teacher.keys(x, targets) if teacher.cache is not None else None
    out = (forward or student)(x, normalized=True)  # HeadOutputs: cls [B, N, C], reg [B, N, R], anchors [N, 5]
    tg = student.assign(out.anchors, targets)
    losses = student.loss_from_outputs(out, targets, [tg])
    with torch.no_grad():
        vlr = torch.stack(
            [
                vlr_weights(out.anchors, t["boxes"].to(out.anchors), d.vlr_alpha, d.vlr_horizontal, out.num_per_level)
                for t in targets
            ]
        )  # [B, N]
        # LD on the positives too (weighted by their assignment IoU) and on the VLR; KD on the VLR only.
        ld_w = torch.maximum(vlr, tg.pos.to(vlr.dtype) * tg.max_iou.to(vlr.dtype))
        t_cls, t_reg = teacher.outputs(x, ld_w > 0, keys)
    T = d.temperature
    if d.ld_weight > 0:
        losses["loss_ld"] = d.ld_weight * ld_loss(out.reg, t_reg, ld_w, T, out.num_per_level, CLASS_REDUCTION)
    if d.kd_weight > 0:
        losses["loss_kd"] = d.kd_weight * kd_loss(out.cls, t_cls, vlr, T, out.num_per_level, CLASS_REDUCTION)
    return losses


# --------------------------------------------------------------------------- the loop


def distill(
    config_or_path=None,
    *,
    student=None,
    teacher=None,
    teacher_weights=None,
    resume: bool = False,
    sets: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    **overrides,
) -> dict:
    """Train a student with LD + KD from a frozen teacher.

    Returns ``{'work_dir', 'checkpoint', 'metrics', 'iterations', 'teacher', 'cache_hits', 'cache_misses'}``.

    Args:
        config_or_path / student: the student's config (file or :class:`Config`); give one of them. A config
            without a ``distill`` section gets ``DistillConfig()`` when ``teacher``/``teacher_weights`` are given.
        teacher: teacher config file, :class:`Config` or model (default: ``distill.teacher``).
        teacher_weights: teacher checkpoint (default: ``distill.teacher_weights``).
        resume, sets, progress, overrides: as :func:`rdet.train` (``distill__ld_weight=5`` etc.).
    """
    if (config_or_path is None) == (student is None):
        raise ValueError("give the student config either positionally or as student=, exactly once")
    source = config_or_path if student is None else student
    config = source if isinstance(source, Config) else load_config(source, sets, check=False)
    if config.distill is None:
        if teacher is None and teacher_weights is None:
            raise ValueError(f"{config.source or 'config'}: no distill section and no teacher given")
        config.distill = DistillConfig()
    config = resolve_config(config, overrides, sets if isinstance(source, Config) else ())  # validated once
    d, t = _section(config), config.train
    _check_distill(d)
    device, rank, world = setup_device(config)
    teach, _ = build_teacher(config, teacher, teacher_weights, device)
    seed_everything(t.seed + rank, t.deterministic)
    model = build_model(config).to(device)

    def losses(forward, batch):
        images, targets = move_batch(batch, device)
        return distill_losses(model, images, targets, teach, d, forward)

    trainer = Trainer(config, model, losses, device, rank, world)
    result = fit(trainer, resume=resume, progress=progress, desc="distill")
    return {**result, "teacher": d.teacher_weights, "cache_hits": teach.hits, "cache_misses": teach.misses}
