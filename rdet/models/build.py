"""``build_model(config)``: the detector a config describes (plain constructors, no registry)."""

from __future__ import annotations

from torch import nn

from rdet.config import Config, validate


def class_names(config: Config) -> list[str]:
    """The class names of a config: ``data.classes`` or the named list ``data.class_list``."""
    if config.data.classes:
        return list(config.data.classes)
    from rdet.data.classes import get_classes

    return list(get_classes(config.data.class_list))


def build_model(config: Config) -> nn.Module:
    """Build the ``nn.Module`` of ``config.model`` (weights initialised; backbone weights loaded if given)."""
    validate(config)
    names = class_names(config)
    if len(names) != config.model.head.num_classes:
        raise ValueError(
            f"config field model.head.num_classes: {config.model.head.num_classes} but "
            f"{len(names)} class names in the data config"
        )
    if config.model.type == "r3det":
        from rdet.models.r3det import R3Det

        return R3Det(config.model, names)
    from rdet.models.retinanet import RotatedRetinaNet

    return RotatedRetinaNet(config.model, names)
