"""StyleGAN2's regularisers (Karras et al. 2020), as rosinality/stylegan2-pytorch computes them.

* R1 (Mescheder et al. 2018): the squared norm of the discriminator's gradient on real images,
  :func:`r1_penalty`; rosinality's loss is ``gamma / 2 * mean(r1) * every`` on the steps it runs (lazily, every
  16 steps).
* Path length: for W+ codes ``w`` and images ``x = G(w)``, the length of ``J_w^T y`` for a random image ``y``
  (N(0, 1) / sqrt(H W)), :func:`path_lengths`, pulled toward its running mean by :func:`path_length_penalty`.

Both differentiate a gradient (``create_graph=True``), so the penalty trains the network that made it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def r1_penalty(real_scores: Tensor, real_images: Tensor) -> Tensor:
    """Per-sample ``|d sum(D(x)) / dx|^2`` over each image's pixels.

    Args:
        real_scores: (N, ...) discriminator logits of ``real_images``.
        real_images: (N, C, H, W) the discriminator's input (``requires_grad`` set before the forward pass).

    Returns:
        (N,) float32.
    """
    (grad,) = torch.autograd.grad(real_scores.float().sum(), real_images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1)


def path_lengths(images: Tensor, w_plus: Tensor, direction: Tensor) -> Tensor:
    """Per-sample ``sqrt(mean over layers of |d sum(images * direction) / d w_plus|^2)``, rosinality's.

    Args:
        images: (N, C, H, W) generated from ``w_plus``.
        w_plus: (N, num_ws, w_dim) the codes the synthesis read.
        direction: (N, C, H, W) random images, N(0, 1) / sqrt(H * W) (rosinality's ``noise``).

    Returns:
        (N,) float32.
    """
    (grad,) = torch.autograd.grad((images.float() * direction).sum(), w_plus, create_graph=True)
    return grad.float().pow(2).sum(2).mean(1).sqrt()


def path_length_penalty(lengths: Tensor, running_mean: Tensor, decay: float = 0.01,
                        batch_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``mean((lengths - m)^2)`` with ``m = running_mean + decay * (batch_mean - running_mean)``, and ``m`` detached
    (the next running mean), as rosinality's ``g_path_regularize`` (the gradient flows through ``m`` as there).

    Args:
        lengths: (N,) :func:`path_lengths`.
        running_mean: () the mean so far (0 at the start).
        decay: weight of this batch in the running mean.
        batch_mean: () the batch's mean length; default ``lengths.mean()`` (several processes pass the mean over
            all of them, so they keep one running mean).
    """
    batch_mean = lengths.mean() if batch_mean is None else batch_mean
    mean = running_mean + decay * (batch_mean - running_mean)
    return (lengths - mean).pow(2).mean(), mean.detach()
