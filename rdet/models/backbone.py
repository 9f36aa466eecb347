"""ResNet-18/34/50 with torchvision's parameter names, so ImageNet checkpoints load as they are.

MMDetection's ResNet (``style='pytorch'``) uses the same names (``conv1``, ``bn1``, ``layer1.0.conv1`` ...),
so MMRotate checkpoints' ``backbone.*`` keys load too.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        # stride on the 3x3 conv ("pytorch" style, as torchvision and mmdet's default)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_SPECS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(nn.Module):
    """ResNet returning C2-C5 feature maps.

    Args:
        depth: 18, 34 or 50.
        frozen_stages: 0 freezes nothing; 1 freezes the stem and ``layer1`` (the published setting) ...
        norm_eval: keep every BatchNorm in eval mode while training (batch 2 per GPU is too small to
            update statistics; the published configs do this).

    Shapes: ``x (Tensor[B, 3, H, W])`` -> ``[C2 [B, c, H/4, W/4], C3 /8, C4 /16, C5 /32]``.
    """

    def __init__(self, depth: int = 50, frozen_stages: int = 1, norm_eval: bool = True):
        super().__init__()
        if depth not in _SPECS:
            raise ValueError(f"ResNet depth must be one of {sorted(_SPECS)}, got {depth}")
        block, layers = _SPECS[depth]
        self.depth, self.frozen_stages, self.norm_eval = depth, frozen_stages, norm_eval
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.out_channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._freeze()

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _frozen_modules(self) -> list[nn.Module]:
        mods: list[nn.Module] = [self.conv1, self.bn1] if self.frozen_stages >= 1 else []
        mods += [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        return mods

    def _freeze(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def load_weights(self, path: str | Path) -> tuple[list[str], list[str]]:
        """Load a local torchvision-style checkpoint; returns (missing, unexpected) keys after reporting them.

        ``fc.*`` (the ImageNet classifier) is expected to be unused and is not reported.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        # MMDetection-style checkpoints prefix the backbone keys.
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        result = self.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            print(
                f"backbone weights {path}: {len(result.missing_keys)} missing keys "
                f"{result.missing_keys[:5]}, {len(result.unexpected_keys)} unexpected keys "
                f"{result.unexpected_keys[:5]}"
            )
        self._freeze()
        return list(result.missing_keys), list(result.unexpected_keys)
