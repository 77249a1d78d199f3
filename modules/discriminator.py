"""PatchGAN (NLayer) discriminator for 1-channel mel "images", as in pix2pix / taming-transformers.

GroupNorm replaces the references' BatchNorm: it keeps no running statistics, so data-parallel ranks stay
identical and evaluation does not depend on the last training batch.
"""

from __future__ import annotations

from torch import nn


class NLayerDiscriminator(nn.Module):
    """Conv stack of `n_layers` stride-2 blocks; outputs a logit per patch [B, 1, H', W']."""

    def __init__(self, in_channels: int = 1, channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(channels * prev, channels * mult, 4, stride, 1, bias=False),
                nn.GroupNorm(min(32, channels * mult // 4), channels * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(channels * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.net(x)
