"""Learning-rate schedules as pure per-step multipliers of the base lr."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from drop_core.registry import Registry

# factor(step, steps_per_epoch, epochs, milestones) -> multiplier of the base lr for optimiser step `step` (0-based)
ScheduleFn = Callable[[int, int, int, tuple[float, ...]], float]
SCHEDULES: Registry[ScheduleFn] = Registry("schedule")

MULTISTEP_GAMMA = 0.2        # the paper's drops: lr / 5 at each milestone
ONECYCLE_PEAK = 0.25         # fraction of training at which one-cycle reaches the base lr
ONECYCLE_START = 0.04        # one-cycle starts at base lr x this (1/25, as torch's OneCycleLR)


def milestone_epochs(epochs: int, milestones: tuple[float, ...]) -> list[int]:
    """Epochs at which the lr drops: ``int(fraction * epochs)`` (the authors' integer scaling), ignoring epoch 0."""
    return [m for m in (int(f * epochs) for f in milestones) if m >= 1]


@SCHEDULES.register("multistep", "the paper's schedule: lr x0.2 at each milestone (fractions of the epochs)")
def multistep(step: int, steps_per_epoch: int, epochs: int, milestones: tuple[float, ...]) -> float:
    epoch = step // steps_per_epoch
    drops = sum(epoch >= m for m in milestone_epochs(epochs, milestones))
    return MULTISTEP_GAMMA ** drops


@SCHEDULES.register("onecycle", "linear warm-up to the base lr over the first quarter, then linear decay to 0")
def onecycle(step: int, steps_per_epoch: int, epochs: int, milestones: tuple[float, ...]) -> float:
    total = steps_per_epoch * epochs
    return float(np.interp(step / total, [0.0, ONECYCLE_PEAK, 1.0], [ONECYCLE_START, 1.0, 0.0]))


@SCHEDULES.register("constant", "the base lr throughout")
def constant(step: int, steps_per_epoch: int, epochs: int, milestones: tuple[float, ...]) -> float:
    return 1.0
