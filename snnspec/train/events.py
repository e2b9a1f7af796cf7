"""Event streams made from still images the way N-MNIST was recorded: a synthetic stand-in.

N-MNIST (Orchard et al. 2015) was recorded by moving an ATIS event camera in three saccades, an
isosceles triangle, in front of each MNIST digit shown on a monitor; each pixel emits an ON or OFF
event when its log intensity changes by more than a contrast threshold, and the 28x28 digits
become 34x34 streams with two polarity channels. `saccades:SOURCE` does this in software to any
image source (`--data saccades:mnist.npz`): the image, zero-padded by 3 pixels on each side, is
shifted with bilinear interpolation along the triangle below, 10 steps per saccade (`STEPS` = 30
in all); a pixel emits an ON (channel 0) or OFF (channel 1) event at a step where its log
intensity `log(value + LOG_OFFSET)` has moved by more than `CONTRAST` from its level at its last
event (which it then takes). No noise, no refractory period, at most one event per pixel and step:
the same image always gives the same stream. It is not N-MNIST (no sensor noise, no monitor
flicker, no timing jitter), and results on it are not N-MNIST results.

The streams are rendered batch by batch from the stored images, so memory stays that of the images.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PAD = 3
STEPS_PER_SACCADE = 10
STEPS = 3 * STEPS_PER_SACCADE
CONTRAST = 0.15
LOG_OFFSET = 0.1
# where the image sits (x, y pixels, y down) at the start of each saccade; the last returns to the first
TRIANGLE = ((-2.5, 1.5), (2.5, 1.5), (0.0, -2.5))


def stream_shape(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one sample's stream: [STEPS, 2, H + 2 * PAD, W + 2 * PAD]."""
    height, width = image_shape[-2:]
    return (STEPS, 2, height + 2 * PAD, width + 2 * PAD)


def offsets() -> list[tuple[float, float]]:
    """The image's offset at the start (index 0) and at the end of each of the STEPS steps."""
    path = [TRIANGLE[0]]
    for k in range(3):
        (x0, y0), (x1, y1) = TRIANGLE[k], TRIANGLE[(k + 1) % 3]
        path += [(x0 + (x1 - x0) * s / STEPS_PER_SACCADE, y0 + (y1 - y0) * s / STEPS_PER_SACCADE)
                 for s in range(1, STEPS_PER_SACCADE + 1)]
    return path


@functools.lru_cache(maxsize=8)
def _grid(batch: int, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """grid_sample's sampling grid for every offset (offset-major, then batch): the same for every batch,
    kept on the batch's device (on a GPU, not copied there again for each batch)."""
    import torch
    import torch.nn.functional as F

    # affine_grid maps output to input coordinates in [-1, 1]: content moves by (dx, dy) pixels
    theta = torch.tensor([[[1.0, 0.0, -2 * dx / width], [0.0, 1.0, -2 * dy / height]] for dx, dy in offsets()],
                         dtype=dtype, device=device)
    return F.affine_grid(theta, [len(theta), 1, height, width], align_corners=False).repeat_interleave(batch, 0)


def render(images: torch.Tensor) -> torch.Tensor:
    """Event streams [B, STEPS, 2, H + 6, W + 6] (0 or 1) of images [B, H, W] or [B, 1, H, W] in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = F.pad(images.reshape(images.shape[0], 1, *images.shape[-2:]), (PAD, PAD, PAD, PAD))
    batch, _, height, width = x.shape
    moved = F.grid_sample(x.repeat(STEPS + 1, 1, 1, 1), _grid(batch, height, width, x.dtype, x.device),
                          mode="bilinear", padding_mode="zeros", align_corners=False)
    frames = moved.reshape(STEPS + 1, batch, height, width)
    level = torch.log(frames[0] + LOG_OFFSET)
    stream = x.new_zeros(batch, STEPS, 2, height, width)
    for step, frame in enumerate(frames[1:]):
        change = torch.log(frame + LOG_OFFSET) - level
        on, off = change > CONTRAST, change < -CONTRAST
        level = torch.where(on | off, level + change, level)
        stream[:, step, 0], stream[:, step, 1] = on, off
    return stream
