"""Training presets: named bundles of hyperparameters that fill the unset fields of a run config.

Resolution order (nanoGPT ``configurator.py`` style, done in ``drop_core.pipeline.resolve``):
the preset's values first, then its per-model values, then every flag the user set. A user
flag always wins and every override is logged; a preset never changes the dataset, the
scorer, the quoter or the density.

- ``paper``: the authors' hyperparameters per model (docs/drop-method.md, "Training recipe": SGD 0.9, MultiStepLR x0.2
  at 50%/75% of training, epoch scaling (0.5+0.5d)/d, query models at 10% of the epochs with
  5 inits for EL2N/GraNd). Meant for a GPU; on a CPU it is a smoke test at best.
- ``fast``: short one-cycle runs with label smoothing and bf16 on a GPU (airbench-style, not the
  paper's recipe, never to be reported as a reproduction).
- ``cpu``: a small model and a few epochs, for laptops and the embedded datasets. It also
  gives every class a floor of 20 samples (``min_per_class``): on the embedded datasets a
  small model reaches validation recall 1.0 on the easiest classes, which gives them no DRoP
  quota at all (see the README's measurements); ``--min-per-class 0`` is the paper's rule.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drop_core.registry import Registry

EMBEDDED = ("digits", "gaussians")     # tabular datasets that ship with the package


@dataclass(frozen=True)
class Preset:
    """``values`` fill unset config fields; ``per_model`` refines them for one model.

    ``default_models`` maps a dataset to the model used when the user gives none
    (``"*"``: any other dataset).
    """

    name: str
    values: Mapping[str, Any]
    per_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_models: Mapping[str, str] = field(default_factory=dict)

    def default_model(self, dataset: str) -> str:
        return self.default_models.get(dataset, self.default_models["*"])

    def values_for(self, model: str) -> dict[str, Any]:
        """Preset values for ``model``: common values overlaid with the model's own."""
        return {**self.values, **self.per_model.get(model, {})}


PRESETS: Registry[Preset] = Registry("preset")


def _add(name: str, description: str, preset: Preset) -> None:
    PRESETS.add(name, preset, description)


# The paper's recipe (docs/drop-method.md, "Training recipe" and "Query models").
_PAPER_VGG16 = {"lr": 0.1, "weight_decay": 1e-4, "batch_size": 128, "epochs": 160}
_add("paper", "the authors' hyperparameters per model (SGD, x0.2 lr drops, epoch scaling); GPU", Preset(
    name="paper",
    values={"schedule": "multistep", "milestones": (0.5, 0.75), "momentum": 0.9, "label_smoothing": 0.0,
            "augment": True, "precision": "fp32", "epoch_scaling": True, "query_fraction": 0.1,
            "query_inits": 5, "min_per_class": 0, **_PAPER_VGG16},
    per_model={
        "vgg16": _PAPER_VGG16,
        "vgg19": {"lr": 0.1, "weight_decay": 5e-4, "batch_size": 128, "epochs": 160},
        "resnet18": {"lr": 0.2, "weight_decay": 1e-4, "batch_size": 256, "epochs": 200},
    },
    default_models={"cifar10": "vgg16", "cifar100": "vgg19", "tinyimagenet": "resnet18",
                    "mnist": "lenet", "fashion_mnist": "lenet", **{d: "mlp" for d in EMBEDDED}, "*": "vgg16"},
))

# What the two short-run presets share; each sets its own length, batch, lr, smoothing and class floor.
_SHORT_RUNS = {"schedule": "onecycle", "milestones": (0.5, 0.75), "momentum": 0.9, "augment": True,
               "precision": "auto", "epoch_scaling": False, "query_fraction": 0.25, "query_inits": 2,
               "weight_decay": 5e-4}

_add("fast", "short one-cycle runs, label smoothing, bf16 (airbench-style, not the paper's recipe); GPU", Preset(
    name="fast",
    values={**_SHORT_RUNS, "label_smoothing": 0.2, "min_per_class": 0, "epochs": 16, "batch_size": 512, "lr": 0.4},
    per_model={"mlp": {"epochs": 40, "batch_size": 128, "lr": 0.1, "label_smoothing": 0.0, "augment": False}},
    default_models={**{d: "mlp" for d in EMBEDDED}, "*": "cnn"},
))

_add("cpu", "a small model and few epochs: seconds on the embedded datasets, minutes on CIFAR", Preset(
    name="cpu",
    values={**_SHORT_RUNS, "label_smoothing": 0.0, "min_per_class": 20, "epochs": 8, "batch_size": 256, "lr": 0.2},
    per_model={"mlp": {"epochs": 30, "batch_size": 64, "lr": 0.05, "augment": False, "query_inits": 3}},
    default_models={**{d: "mlp" for d in EMBEDDED}, "*": "cnn"},
))


def preset_keys() -> set[str]:
    """Every config field some preset sets (the pipeline checks these are real fields)."""
    keys: set[str] = set()
    for entry in PRESETS:
        keys |= set(entry.obj.values)
        for vals in entry.obj.per_model.values():
            keys |= set(vals)
    return keys

