"""``build_model(config)``: the detector a config describes (plain constructors, no registry).

This is the config path into :mod:`rdet.models`; the constructors themselves (``RotatedRetinaNet``,
``R3Det``) take modules with defaults and need no config file. The config is validated where it is
loaded (``load_config``/``from_dict``), not here.
"""

from __future__ import annotations

from rdet.config import Config, class_names
from rdet.models.backbone import ResNet
from rdet.models.detector import DenseDetector


def build_model(config: Config) -> DenseDetector:
    """Build the detector of ``config.model`` (weights initialised; ``model.backbone.weights`` loaded if set).

    The model's ``config`` attribute is set to ``config`` (checkpoints store it).

    Raises:
        ValueError: the class list does not match ``model.head.num_classes`` (naming both).
    """
    names = class_names(config)
    if len(names) != config.model.head.num_classes:
        raise ValueError(
            f"config field model.head.num_classes: {config.model.head.num_classes} but "
            f"{len(names)} class names in the data config"
        )
    model: DenseDetector
    if config.model.type == "r3det":
        from rdet.models.r3det import R3Det

        model = R3Det(names, config.model)
    else:
        from rdet.models.retinanet import RotatedRetinaNet

        model = RotatedRetinaNet(names, config.model)
    if config.model.backbone.weights:
        assert isinstance(model.backbone, ResNet)  # the default backbone of the config path
        model.backbone.load_weights(config.model.backbone.weights)
    model.config = config
    return model
