"""Per-sample gradient norms ||d CE(model(x_i), y_i) / d theta||_2 over all parameters (for GraNd).

The fast path ("ghost norms", as in differential-privacy libraries: Opacus' ghost clipping,
Li et al. 2022, Bu et al.'s book-keeping) never forms a per-sample gradient of the whole
model. One ordinary batched backward of the *summed* loss, in eval mode, gives every layer's
output gradient ``g_i`` for every sample; with the layer's input ``a_i`` (captured by a
forward hook) each parameter's per-sample gradient norm follows exactly:

- Linear / convolution weight, gradient ``A_i^T G_i`` over T positions (T = 1 for a flat
  Linear input, the unfolded patches of a convolution): ``||a_i||^2 ||g_i||^2`` when T = 1,
  else whichever is cheaper of the Gram form ``sum_ts (a_t . a_s)(g_t . g_s)`` (T^2 work
  per sample) and the materialised ``||A_i^T G_i||^2`` (d * p per sample);
- bias: ``||sum_t g_t||^2``;
- BatchNorm (running statistics) / GroupNorm / LayerNorm affine weight: the normalised
  input times ``g``, summed over positions; their bias as above.

Eval mode makes each sample's gradient independent of its batch. A model holding anything
else (an unknown parameterised layer, a tied weight, a layer called twice, BatchNorm without
running statistics) falls back to the exact ``torch.func`` path (``vmap(grad)``), never to
an approximation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge
from torch.func import functional_call, grad, vmap

from drop_core.errors import DropError

METHODS = ("auto", "ghost", "func")
_CONV = (nn.Conv1d, nn.Conv2d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)
_GHOST_TYPES = (nn.Linear, *_CONV, *_NORM)


class _NotGhostable(Exception):
    """A model (or one forward of it) that the ghost identities do not cover exactly."""


def per_sample_grad_norms(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                          method: str = "auto", batch_size: int = 256, max_bytes: int = 2**30) -> torch.Tensor:
    """(N,) float32 norms of each sample's cross-entropy gradient over all of ``model``'s parameters.

    Runs in eval mode (BatchNorm uses its running statistics, dropout is off) in fp32, also
    under a caller's ``no_grad`` or autocast; the model's train/eval mode is restored and no
    ``.grad`` is touched. ``inputs`` must already be preprocessed and on the model's device.
    ``method``: "ghost" (layer identities, one batched backward per chunk of ``batch_size``),
    "func" (``torch.func`` per-sample gradients, chunks shrunk so they fit ``max_bytes``) or
    "auto" (ghost where :func:`ghost_unsupported` finds nothing, else func).
    """
    if method not in METHODS:
        raise DropError(f"The 'method' parameter of per_sample_grad_norms must be one of "
                        f"{', '.join(METHODS)}. Got {method!r} instead.")
    reason = ghost_unsupported(model)
    if method == "ghost" and reason:
        raise DropError(f"per_sample_grad_norms(method='ghost') cannot handle this model: {reason}; "
                        f"use method='auto' to fall back to the exact torch.func path.")
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.autocast(inputs.device.type, enabled=False):
            if method == "func" or reason:
                return _func_norms(model, inputs, labels, batch_size, max_bytes)
            norms = [torch.zeros(0, device=inputs.device)]
            for start in range(0, inputs.shape[0], batch_size):
                x, y = inputs[start:start + batch_size], labels[start:start + batch_size]
                try:
                    norms.append(_ghost_norms(model, x, y, max_bytes))
                except _NotGhostable as err:
                    if method == "ghost":
                        raise DropError(f"per_sample_grad_norms(method='ghost') cannot handle this model: "
                                        f"{err}; use method='auto' to fall back to torch.func.") from None
                    norms.append(_func_norms(model, x, y, batch_size, max_bytes))
            return torch.cat(norms)
    finally:
        model.train(was_training)


def ghost_unsupported(model: nn.Module) -> str | None:
    """Why the ghost identities would not give ``model``'s exact norms, or None when they do."""
    owners: dict[int, str] = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for p_name, p in module.named_parameters(recurse=False):
            where = f"{mod_name or 'model'}.{p_name}"
            if id(p) in owners:
                return f"parameter {where} is the same tensor as {owners[id(p)]} (tied weights)"
            owners[id(p)] = where
            if type(module) not in _GHOST_TYPES or p_name not in ("weight", "bias"):
                return f"parameter {where} belongs to a {type(module).__name__}, which has no ghost rule"
        if type(module) in _GHOST_TYPES and any(True for _ in module.parameters(recurse=False)):
            why = _layer_unsupported(module)
            if why:
                return f"layer {mod_name or 'model'} ({type(module).__name__}) {why}"
    return None


def _layer_unsupported(module: nn.Module) -> str | None:
    if isinstance(module, _CONV):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return "pads with a mode or a string ('same'/'valid'); only numeric zero padding has a ghost rule"
    elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
        return "has no running statistics, so in eval mode it normalises over the batch and couples samples"
    return None


def _ghost_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_bytes: int) -> torch.Tensor:
    """Norms for one chunk: one forward with hooks, one backward of the summed loss.

    The input does not require grad, so the layers that read it (or anything without parameters
    upstream) are the roots, and the backward stops at their outputs: nothing is spent on the
    gradient of the input itself (15-40% of the forward + backward of bench/scoring_speed.py's small
    CIFAR CNN, whose first convolution reads 3 channels, in two measurements).
    The roots are named by gradient edges taken at forward time, so an in-place op that later
    rewrites a root's output (``ReLU(inplace=True)``) does not move the target.
    """
    sq = torch.zeros(x.shape[0], device=x.device, dtype=torch.float32)
    called: set[nn.Module] = set()
    answered: set[nn.Module] = set()
    roots: list[GradientEdge] = []

    def on_forward(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module in called:
            raise _NotGhostable(f"a {type(module).__name__} is called more than once per forward")
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor) \
                or output.grad_fn is None:
            raise _NotGhostable(f"a {type(module).__name__} has no tensor input and differentiable output")
        called.add(module)
        a, version = args[0], args[0]._version
        if not a.requires_grad:
            roots.append(get_gradient_edge(output))

        def on_grad(g: torch.Tensor) -> None:
            if a._version != version:
                raise _NotGhostable(f"the input of a {type(module).__name__} is modified in place")
            sq.add_(_layer_sq_norms(module, a.detach().float(), g.detach().float(), max_bytes))
            answered.add(module)

        output.register_hook(on_grad)

    layers = [m for m in model.modules() if type(m) in _GHOST_TYPES and any(True for _ in m.parameters(False))]
    handles = [m.register_forward_hook(on_forward) for m in layers]
    try:
        loss = F.cross_entropy(model(x.detach().float()).float(), y, reduction="sum")   # each sample's own grads
    finally:
        for h in handles:
            h.remove()
    if roots:
        torch.autograd.grad(loss, roots, allow_unused=True)                   # no weight grads, no .grad writes
    if called - answered:
        raise _NotGhostable("a layer's output gradient never arrived (its output may not affect the loss)")
    return sq.sqrt()


def _layer_sq_norms(module: nn.Module, a: torch.Tensor, g: torch.Tensor, max_bytes: int) -> torch.Tensor:
    """(B,) squared norms of one layer's per-sample weight and bias gradients."""
    b = a.shape[0]
    if isinstance(module, nn.Linear):
        a, g = a.reshape(b, -1, a.shape[-1]), g.reshape(b, -1, g.shape[-1])        # (B, T, d), (B, T, p)
        out = _matmul_sq_norms(a.transpose(1, 2), g.transpose(1, 2), 1, max_bytes)
        bias_g = g.sum(1)
    elif isinstance(module, _CONV):
        out = _conv_weight_sq_norms(module, a, g, max_bytes)
        bias_g = g.flatten(2).sum(2)
    else:
        positions = tuple(range(1, a.dim() - len(module.normalized_shape))) if isinstance(module, nn.LayerNorm) \
            else tuple(range(2, a.dim()))                         # LayerNorm: per element; others: per channel
        bias_g = _sum(g, positions)
        out = _norm_weight_grads(module, a, g, bias_g, positions).flatten(1).pow(2).sum(1)
    if module.bias is not None:
        out = out + bias_g.flatten(1).pow(2).sum(1)
    return out


def _sum(t: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """``t`` summed over ``dims`` (an empty tuple sums nothing, unlike ``Tensor.sum(())``)."""
    return t.sum(dims) if dims else t


def _norm_weight_grads(module: nn.Module, a: torch.Tensor, g: torch.Tensor, g_sum: torch.Tensor,
                       positions: tuple[int, ...]) -> torch.Tensor:
    """Per-sample gradient of a normalisation layer's affine weight: ``g`` times the normalised input, summed.

    BatchNorm (running statistics) normalises each channel by constants, so the sum is
    ``(sum g*a - mean * sum g) / sqrt(var + eps)``: one product pass instead of three.
    """
    if isinstance(module, nn.GroupNorm):
        return _sum(g * F.group_norm(a, module.num_groups, eps=module.eps), positions)
    if isinstance(module, nn.LayerNorm):
        return _sum(g * F.layer_norm(a, module.normalized_shape, eps=module.eps), positions)
    return (_sum(g * a, positions) - module.running_mean * g_sum) * torch.rsqrt(module.running_var + module.eps)


def _conv_weight_sq_norms(module: nn.Conv1d | nn.Conv2d, a: torch.Tensor, g: torch.Tensor,
                          max_bytes: int) -> torch.Tensor:
    """(B,) squared norms of a convolution's per-sample weight gradients.

    Gram form over the unfolded input patches when T^2 (d + p) < T d p (few output positions),
    else the per-sample gradients themselves, from one weight-gradient convolution with the
    batch as groups (measured 2-8x faster on a CPU than unfolding and batched matmuls). The
    batch is walked in pieces whose intermediates stay within ``max_bytes``.
    """
    if isinstance(module, nn.Conv1d):
        a, g = a.unsqueeze(-2), g.unsqueeze(-2)
    k, s, p, d = (tuple(v) if len(v) == 2 else (unit, *v) for v, unit in    # a 1-d conv is 2-d with height 1
                  ((module.kernel_size, 1), (module.stride, 1), (module.padding, 0), (module.dilation, 1)))
    b, t, groups = a.shape[0], g.shape[2] * g.shape[3], module.groups
    d_in, p_out = a.shape[1] // groups * k[0] * k[1], g.shape[1] // groups
    gram = t * (d_in + p_out) < d_in * p_out
    per_sample = 4 * (t * t * groups * 2 + a.shape[1] * k[0] * k[1] * t if gram
                      else module.weight.numel() + a[0].numel() + g[0].numel())
    step = max(1, max_bytes // per_sample)
    parts = []
    for i in range(0, b, step):
        ai, gi = a[i:i + step], g[i:i + step]
        n = ai.shape[0]
        if gram:
            patches = F.unfold(ai, k, dilation=d, padding=p, stride=s)                    # (n, C_in*kh*kw, T)
            parts.append(_matmul_sq_norms(patches, gi.reshape(n, gi.shape[1], t), groups, max_bytes))
        else:
            size = (n * module.out_channels, module.in_channels // groups, *k)
            w = torch.nn.grad.conv2d_weight(ai.reshape(1, -1, *ai.shape[2:]), size, gi.reshape(1, -1, *gi.shape[2:]),
                                            s, p, d, n * groups)
            parts.append(w.reshape(n, -1).pow(2).sum(1))
    return torch.cat(parts)


def _matmul_sq_norms(a: torch.Tensor, g: torch.Tensor, groups: int, max_bytes: int) -> torch.Tensor:
    """(B,) ||G_i A_i^T||_F^2 summed over ``groups``, for A (B, groups*d, T) and G (B, groups*p, T).

    Uses the Gram form sum_ts (A^T A)_ts (G^T G)_ts or the materialised (p x d) gradient,
    whichever needs fewer multiplications, walking the batch in pieces within ``max_bytes``.
    """
    b, t = a.shape[0], a.shape[2]
    a, g = a.reshape(b * groups, -1, t), g.reshape(b * groups, -1, t)
    d, p = a.shape[1], g.shape[1]
    if t == 1:
        return (a.pow(2).sum((1, 2)) * g.pow(2).sum((1, 2))).view(b, groups).sum(1)
    gram = t * (d + p) < d * p
    per_row = 8 * (t * t if gram else d * p)
    rows = max(groups, max_bytes // per_row // groups * groups)
    parts = []
    for i in range(0, b * groups, rows):
        ai, gi = a[i:i + rows], g[i:i + rows]
        if gram:
            parts.append((torch.bmm(ai.transpose(1, 2), ai) * torch.bmm(gi.transpose(1, 2), gi)).sum((1, 2)))
        else:
            parts.append(torch.bmm(gi, ai.transpose(1, 2)).pow(2).sum((1, 2)))
    return torch.cat(parts).view(b, groups).sum(1)


def _func_norms(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int,
                max_bytes: int) -> torch.Tensor:
    """Exact per-sample gradients with ``torch.func`` (functional_call + vmap(grad)), then their norms.

    Each chunk holds one gradient per sample, so it is shrunk below ``batch_size`` to keep
    those gradients within ``max_bytes`` (a ResNet-18 has 11M parameters: 45 MB per sample).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    n_params = sum(v.numel() for v in params.values())
    chunk = max(1, min(batch_size, max_bytes // max(1, 4 * n_params)))

    def loss(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out.float(), y.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    norms = [torch.zeros(0, device=inputs.device)]
    for start in range(0, inputs.shape[0], chunk):
        g = per_sample(params, inputs[start:start + chunk], labels[start:start + chunk])
        norms.append(sum(t.float().flatten(1).pow(2).sum(dim=1) for t in g.values()).sqrt())
    return torch.cat(norms)
