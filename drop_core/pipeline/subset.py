"""Selection stage: class quotas from the quota rule, then the kept indices by the selection mode."""
from __future__ import annotations

import numpy as np

from drop_core.config import ResolvedConfig
from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.pipeline.query import budget, derived_seed
from drop_core.quotas import QUOTERS, QuotaParams, quoter_needs_recalls
from drop_core.select import (
    Selection,
    select_ccs,
    select_global,
    select_per_class,
    select_random_per_class,
    select_strategyq,
)


def check_budget(cfg: ResolvedConfig, class_sizes: np.ndarray) -> int:
    """The number of samples kept; a density that keeps nothing, or a class floor the budget cannot
    meet, is an error before any training (the floor usually comes from a preset the user never typed)."""
    n = int(class_sizes.sum())
    n_keep = budget(cfg.density, n)
    if n_keep < 1:
        raise DropError(f"Density {cfg.density} keeps no sample of the {n} training samples; raise the density.")
    need = int(np.minimum(cfg.min_per_class, class_sizes).sum())
    if cfg.density < 1.0 and cfg.quoter != "none" and need > n_keep:
        raise DropError(f"The class floor min_per_class={cfg.min_per_class} (preset {cfg.preset!r} unless you set "
                        f"it) needs {need} samples, but density {cfg.density} keeps only {n_keep} of {n}. "
                        f"Lower it with --min-per-class (0 is the paper's rule) or raise the density.")
    return n_keep


def select_subset(cfg: ResolvedConfig, scores: np.ndarray, labels: np.ndarray, val_recall: np.ndarray | None,
                  num_classes: int) -> Selection:
    """The kept training samples of a run: quotas (Algorithm 1 for ``drop``), then selection within classes."""
    sizes = np.bincount(labels, minlength=num_classes)
    rng = np.random.default_rng(derived_seed(cfg.seed, 3))
    n_keep = check_budget(cfg, sizes)
    if cfg.density == 1.0:
        return Selection(indices=np.arange(labels.size), kept_per_class=sizes)
    quotas = QUOTERS.get(cfg.quoter)(sizes, val_recall, cfg.density,
                                     QuotaParams(min_per_class=cfg.min_per_class, strength=cfg.strength))
    if cfg.selection == "ccs":
        return select_ccs(scores, labels, n_keep, num_classes, rng)
    if quotas is None:
        chosen = select_global(scores, labels, n_keep, num_classes, rng=rng)
        # StrategyQ: the scorer's own class counts, random within each class
        return select_strategyq(labels, chosen, rng) if cfg.selection == "random" else chosen
    if cfg.selection == "random":
        return select_random_per_class(labels, quotas, rng)
    return select_per_class(scores, labels, quotas, rng=rng)


def empty_class_warnings(cfg: ResolvedConfig, data: Dataset, sel: Selection,
                         val_recall: np.ndarray | None) -> list[str]:
    """One warning per class that keeps no training sample, naming the class and the reason."""
    out = []
    sizes = data.class_sizes()
    for k in np.flatnonzero((sel.kept_per_class == 0) & (sizes > 0)):
        why = ""
        if val_recall is not None and quoter_needs_recalls(cfg.quoter):
            why = f" (its validation recall is {val_recall[k]:.3f}, so the {cfg.quoter} quota gives it nothing)"
        out.append(f"Class {data.classes[k]!r} keeps 0 of {int(sizes[k])} training samples{why}; the final model "
                   f"never sees it. Set min_per_class (--min-per-class N) to give every class a floor.")
    return out
