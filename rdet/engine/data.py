"""Datasets and loaders as a config describes them (the glue between ``rdet.data`` and the loops)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from rdet.config import Config, class_names
from rdet.data.dataset import RotatedDataset, collate
from rdet.data.transforms import Compose, RandomFlip, RandomRotate, Resize


def build_transforms(config: Config, train: bool) -> Compose:
    """Resize (keep ratio) to ``data.img_size``; for training also the configured flips and rotation."""
    d = config.data
    h, w = d.img_size
    transforms: list[Callable] = [Resize((w, h), keep_ratio=True)]
    if train and sum(d.flip) > 0:
        transforms.append(RandomFlip(*d.flip))
    if train and d.rotate_prob > 0:
        transforms.append(RandomRotate(d.rotate_prob, d.rotate_range))
    return Compose(transforms)


def build_dataset(config: Config, split: str) -> RotatedDataset:
    """The ``'train'`` or ``'val'`` dataset of a config (labels read strictly: a bad line is an error)."""
    d = config.data
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    images, labels = (d.train_images, d.train_labels) if split == "train" else (d.val_images, d.val_labels)
    if not images:
        raise ValueError(f"config field data.{split}_images is empty")
    return RotatedDataset(
        images,
        labels or None,
        classes=class_names(config),
        format=d.format,
        version=config.model.coder.angle_version,
        transforms=build_transforms(config, split == "train"),
        filter_empty=split == "train" and d.filter_empty,
        seed=config.train.seed,
    )


class EpochSampler(Sampler):
    """Shuffled order that depends only on (seed, epoch): a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def build_loader(
    config: Config, split: str, rank: int = 0, world: int = 1
) -> tuple[DataLoader, EpochSampler | DistributedSampler | None]:
    """Loader for a split; training shuffles per epoch (``DistributedSampler`` under torchrun)."""
    dataset = build_dataset(config, split)
    t = config.train
    train = split == "train"
    sampler: EpochSampler | DistributedSampler | None = None
    if train:
        sampler = (
            DistributedSampler(dataset, world, rank, shuffle=True, seed=t.seed)
            if world > 1
            else EpochSampler(len(dataset), t.seed)
        )
    loader = DataLoader(
        dataset,
        batch_size=t.batch_size if train else 1,
        sampler=sampler,
        shuffle=False,
        num_workers=t.workers,
        collate_fn=collate,
        drop_last=train,
    )
    return loader, sampler


def move_batch(batch: dict, device) -> tuple[list[torch.Tensor], list[dict]]:
    """A loader batch on ``device``: its images (uint8 ``[3, H_i, W_i]`` each, the model pre-processes them)
    and per-image ``{'boxes', 'labels'}``."""
    targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in batch["targets"]]
    return [img.to(device, non_blocking=True) for img in batch["images"]], targets
