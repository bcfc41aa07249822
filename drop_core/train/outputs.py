"""Final-model records for the scorers: one eval-mode pass over the un-augmented training set."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from drop_core.data.base import Dataset
from drop_core.train.augment import Normalizer
from drop_core.train.device import resolve_runtime
from drop_core.train.evaluate import eval_mode, forward_batches
from drop_core.train.grad_norms import per_sample_grad_norms

FINAL_FIELDS = ("logits", "embeddings", "grad_norms")   # Recording fields filled here
GRAD_BATCH = 256                                         # samples per per_sample_grad_norms call


def final_outputs(model: nn.Module, data: Dataset, want: set[str], *, device: str | torch.device = "cpu",
                  precision: str = "auto", batch_size: int | None = None) -> dict[str, np.ndarray]:
    """Eval-mode ``logits`` (N, K), penultimate ``embeddings`` (N, D) and per-sample ``grad_norms`` (N,)
    of ``model`` over the whole un-augmented training split, for the fields named in ``want``.

    Logits and embeddings use ``precision`` (bf16 autocast where "auto" picks it); gradient
    norms are computed in fp32 by :func:`drop_core.train.grad_norms.per_sample_grad_norms`.
    """
    unknown = set(want) - set(FINAL_FIELDS)
    if unknown:
        raise ValueError(f"final_outputs can compute {', '.join(FINAL_FIELDS)}; got {sorted(unknown)}")
    rt = resolve_runtime(device, precision)
    rt.place(model, data.is_image)
    normalize = Normalizer(data, rt.device)
    out: dict[str, np.ndarray] = {}
    if want & {"logits", "embeddings"}:
        logits, feats = forward_batches(model, data.x_train, normalize, rt, batch_size=batch_size,
                                        features="embeddings" in want)
        if "logits" in want:
            out["logits"] = logits.cpu().numpy()
        if "embeddings" in want:
            out["embeddings"] = feats.cpu().numpy()
    if "grad_norms" in want:
        norms = []
        with eval_mode(model), torch.enable_grad():
            for start in range(0, data.x_train.shape[0], GRAD_BATCH):
                xb = rt.layout(normalize(data.x_train[start:start + GRAD_BATCH].to(rt.device)))
                yb = data.y_train[start:start + GRAD_BATCH].to(rt.device)
                norms.append(per_sample_grad_norms(model, xb, yb).float())
        out["grad_norms"] = torch.cat(norms).cpu().numpy()
    return out
