"""The Mixture page's finite-sample studies, run in one background thread so that no slider waits for one.

A study fits a few hundred classifiers (``theory.mixture_sim``) and takes about 0.3 s in the plane to several seconds
in 16 dimensions, while every exact number of the page takes milliseconds. So the page asks :data:`STUDIES` for the
study of its current inputs, draws what is exact at once and the study when its Future is done. A study is a pure
function of its :class:`StudyKey`, so finished ones are shared by all sessions; a new request cancels the queued
studies nobody is waiting for any more (a running one finishes and stays kept). The worker never calls Streamlit.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from theory.mixture_explorer import MixtureParams
from theory.mixture_sim import simulate_mixture, summarize_mixture_simulation

MAX_KEPT = 16   # finished studies kept (each a few kB)


@dataclass(frozen=True)
class StudyKey:
    """Everything a study's numbers depend on: the model (no class densities) and the sample settings."""

    params: MixtureParams
    samples: int
    repeats: int
    seed: int
    classifier: str


def run_study(key: StudyKey) -> pd.DataFrame:
    """The summary (method, density, metric, mean, std) of one finite-sample study."""
    p = key.params
    sim = simulate_mixture(p.model(), p.priors(), key.samples, strength=p.strength, classifier=key.classifier,
                           repeats=key.repeats, seed=key.seed)
    return summarize_mixture_simulation(sim)


class Studies:
    """Futures of studies by key, computed one at a time in a background thread."""

    def __init__(self, run=run_study, kept: int = MAX_KEPT) -> None:
        self._run, self._kept = run, kept
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixture-study")
        self._jobs: OrderedDict[StudyKey, Future] = OrderedDict()
        self._lock = threading.Lock()

    def request(self, key: StudyKey) -> Future:
        """The study of ``key``: started if new (queued ones for other keys are cancelled), else the known one."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.cancelled():
                for other in self._jobs.values():
                    other.cancel()            # only studies still queued; a running one finishes
                job = self._jobs[key] = self._pool.submit(self._run, key)
            self._jobs.move_to_end(key)
            finished = [k for k, f in self._jobs.items() if f.done() and k != key]
            for old in finished[: max(0, len(self._jobs) - self._kept)]:
                del self._jobs[old]
            return job


STUDIES = Studies()   # one per server process: the page module reruns, this module stays imported
