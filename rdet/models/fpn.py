"""Feature pyramid network (P3-P7), with mmdet's module names so MMRotate checkpoints' ``neck.*`` keys load."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ConvModule(nn.Module):
    """A conv with an optional ReLU, named ``.conv`` like mmcv's ConvModule so checkpoint keys match."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, relu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return F.relu(x, inplace=True) if self.relu else x


class FPN(nn.Module):
    """FPN with ``start_level`` and extra stride-2 convs "on_input" (P6 from C5, P7 from P6).

    Shapes: ``[C2, C3, C4, C5]`` -> ``num_outs`` maps of ``out_channels`` at strides 8, 16, 32, 64, 128.
    """

    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: int = 256,
        start_level: int = 1,
        num_outs: int = 5,
        add_extra_convs: str = "on_input",
    ):
        super().__init__()
        if add_extra_convs != "on_input":
            raise ValueError(f"FPN add_extra_convs must be 'on_input', got {add_extra_convs!r}")
        self.start_level, self.out_channels = start_level, out_channels
        used = in_channels[start_level:]
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in used)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3) for _ in used)
        for i in range(num_outs - len(used)):
            cin = in_channels[-1] if i == 0 else out_channels
            self.fpn_convs.append(ConvModule(cin, out_channels, 3, stride=2))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        inputs = feats[self.start_level :]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down: upsample (nearest) and add
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest"
            )
        outs = [self.fpn_convs[i](x) for i, x in enumerate(laterals)]
        n = len(laterals)
        for i in range(n, len(self.fpn_convs)):
            src = inputs[-1] if i == n else outs[-1]
            outs.append(self.fpn_convs[i](src))
        return outs
