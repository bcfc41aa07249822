"""Batched on-device augmentation and normalisation.

Images stay uint8 in raw pixel space until the last moment: a random horizontal flip
(p = 0.5, where ``Dataset.flip``) and a random integer translation of at most
``Dataset.max_shift`` px per axis with zero fill, then normalisation to float32.
Shifts are drawn uniformly from the integers in [-max_shift, max_shift], per sample and
per axis (the paper's "shifts by at most 4 pixels"; ``RandomAffine(translate=0.15)`` on
32 px draws round(U(-4.8, 4.8)), i.e. the same support with max_shift=5 but lighter
end points). Tabular data are never augmented.
"""
from __future__ import annotations

import torch

from drop_core.data.base import Dataset


class Normalizer:
    """``(x / 255 - mean) / std`` for uint8 images, ``(x - mean) / std`` for tabular data, as one fused affine map.

    For images ``Dataset.mean``/``std`` are per channel in [0, 1] units (torchvision's
    convention); for tabular data they are per feature in the data's own units.
    """

    def __init__(self, data: Dataset, device: torch.device) -> None:
        if data.is_image and float(data.mean.max()) > 1.0:
            raise ValueError(
                f"Dataset {data.name!r}: image mean/std must be in [0, 1] units (per channel); "
                f"got mean {data.mean.tolist()}."
            )
        mean = data.mean.to(device=device, dtype=torch.float32)
        std = data.std.to(device=device, dtype=torch.float32)
        if data.is_image:
            mean, std = mean.view(-1, 1, 1), std.view(-1, 1, 1)
            self.scale = 1.0 / (255.0 * std)
        else:
            self.scale = 1.0 / std
        self.shift = -mean / std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, x.float(), self.scale)


def flip_translate(x: torch.Tensor, flip: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                   max_shift: int) -> torch.Tensor:
    """Mirror image i of a (B, C, H, W) batch left-right where ``flip[i]``, then shift it by (dy[i], dx[i]) px
    with zero fill, as one gather from the zero-padded batch.

    ``out[i, :, r, c] = m[i, :, r - dy[i], c - dx[i]]`` where that pixel exists, else 0, with ``m[i]`` the
    (possibly mirrored) image; |dy|, |dx| must not exceed ``max_shift``. Works on any dtype (uint8 here).
    """
    b, c, h, w = x.shape
    s = max_shift
    cols = torch.arange(w, device=x.device) - dx.view(-1, 1)               # (B, W) columns of m, maybe outside
    cols = torch.where(flip.view(-1, 1), w - 1 - cols, cols) + s           # columns of x, in padded coordinates
    rows = torch.arange(h, device=x.device) + s - dy.view(-1, 1)           # (B, H)
    where = (rows[:, :, None] * (w + 2 * s) + cols[:, None, :]).view(b, 1, h * w)
    padded = torch.nn.functional.pad(x, (s, s, s, s)).view(b, c, -1)
    return padded.gather(2, where.expand(b, c, h * w)).view(b, c, h, w)


def random_flip_translate(x: torch.Tensor, flip: bool, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Flip each image with probability 0.5 (if ``flip``), then translate it by integers drawn uniformly from
    [-max_shift, max_shift] per axis with zero fill; the identity when there is nothing to draw."""
    b, s = x.shape[0], max(max_shift, 0)
    if not flip and s == 0:
        return x
    dev = x.device                       # flips, then shifts, each drawn only where it is used
    no_flip = torch.zeros(b, dtype=torch.bool, device=dev)
    mirror = torch.rand(b, generator=generator, device=dev) < 0.5 if flip else no_flip
    shifts = (torch.randint(-s, s + 1, (2, b), generator=generator, device=dev) if s
              else torch.zeros(2, b, dtype=torch.long, device=dev))
    return flip_translate(x, mirror, shifts[0], shifts[1], s)


def augment(x: torch.Tensor, data: Dataset, generator: torch.Generator) -> torch.Tensor:
    """The dataset's training augmentation on a raw batch (flip, then translate); identity for tabular data."""
    if not data.is_image:
        return x
    return random_flip_translate(x, data.flip, data.max_shift, generator)
