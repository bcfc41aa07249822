"""Background finite-sample studies: one at a time, queued ones cancelled when nobody waits, failures kept."""
from __future__ import annotations

import threading

import pytest

from app.mixture_study import Studies, StudyKey, run_study
from theory.mixture_explorer import MixtureParams


def key(seed: int) -> StudyKey:
    return StudyKey(MixtureParams(), 300, 1, seed, "LDA")


def test_a_new_request_cancels_queued_studies_and_a_known_key_is_reused() -> None:
    gate, ran = threading.Event(), []

    def run(k: StudyKey) -> int:
        gate.wait(10)
        ran.append(k.seed)
        return k.seed

    studies = Studies(run, kept=2)
    first = studies.request(key(1))         # running, waits at the gate
    queued = studies.request(key(2))
    latest = studies.request(key(3))        # nobody waits for 2 any more
    assert queued.cancelled() and not first.cancelled()
    assert studies.request(key(3)) is latest
    gate.set()
    assert (first.result(10), latest.result(10)) == (1, 3) and ran == [1, 3]
    again = studies.request(key(2))         # asked for again: started anew
    assert again is not queued and again.result(10) == 2
    assert studies.request(key(1)) is not first   # only the two newest finished studies are kept


def test_a_failed_study_reports_its_error() -> None:
    def run(k: StudyKey) -> None:
        raise ValueError("The 'n' parameter of simulate_mixture must be an int >= 20. Got 5 instead.")

    job = Studies(run).request(key(0))
    with pytest.raises(ValueError, match="'n' parameter"):
        job.result(10)


def test_run_study_summarises_the_simulation() -> None:
    summary = run_study(key(0))
    assert {"method", "density", "metric", "mean", "std"} <= set(summary.columns) and len(summary)
