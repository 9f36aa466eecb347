"""Detectors: ResNet backbone, FPN neck, anchor heads, coders. ``build_model(config)`` builds one."""

from rdet.models.build import build_model

__all__ = ["build_model"]
