"""GraNd (Paul et al., 2021), as the DRoP authors run it: the norm of the per-sample
gradient of the cross-entropy over **all** model parameters, in eval mode, after ~10% of
training, averaged over query inits.

The score function reads ``Recording.grad_norms``; :func:`per_sample_grad_norms` computes
them (the trainer's ``record.final_outputs`` calls it) with ``torch.func``
(``functional_call`` + ``vmap(grad)``) instead of one backward pass per sample.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from drop_core.scoring.base import ScorerParams, field_stack, register_scorer
from drop_core.train.recording import Recording


def per_sample_grad_norms(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                          batch_size: int = 256, max_bytes: int = 2**30) -> torch.Tensor:
    """(N,) float32 norms ||d CE(model(x_i), y_i) / d theta||_2 over all parameters.

    Runs in eval mode (BatchNorm uses its running statistics, dropout is off), so each
    sample's gradient does not depend on the rest of its batch; the model's train/eval
    mode is restored afterwards. ``inputs`` must already be preprocessed as the model
    expects and live on the model's device. Each chunk holds one gradient per sample, so
    the chunk is shrunk below ``batch_size`` when needed to keep those gradients within
    ``max_bytes`` (a ResNet-18 has 11M parameters, i.e. 45 MB per sample in float32).
    """
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    frozen = {k: v.detach() for k, v in params.items()}
    n_params = sum(v.numel() for v in frozen.values())
    chunk = max(1, min(batch_size, max_bytes // max(1, 4 * n_params)))

    def loss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out.float(), y.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    was_training = model.training
    model.eval()
    norms = [torch.zeros(0, device=inputs.device)]
    try:
        with torch.enable_grad():                     # also under a caller's no_grad()
            for start in range(0, inputs.shape[0], chunk):
                g = per_sample(frozen, inputs[start:start + chunk], labels[start:start + chunk])
                sq = sum(t.float().flatten(1).pow(2).sum(dim=1) for t in g.values())
                norms.append(sq.sqrt())
    finally:
        model.train(was_training)
    return torch.cat(norms)


@register_scorer("grand", needs={"grad_norms"}, query="early",
                 description="GraNd: per-sample gradient norm of early query models, mean over inits")
def grand_scores(recordings: list[Recording], rng: np.random.Generator,
                 params: ScorerParams) -> np.ndarray:
    return np.mean([g.astype(np.float64) for g in field_stack(recordings, "grad_norms")], axis=0)
