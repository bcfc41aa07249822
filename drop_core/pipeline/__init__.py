"""The DRoP pipeline: query model(s) -> validation recall -> scores -> quotas -> subset -> final model -> metrics.

Rooms: :mod:`drop_core.config` (what a run is and its keys), :mod:`.query` (query models and
scores, cached), :mod:`.subset` (quotas and selection), :mod:`.lifecycle` (the run: store
rows, progress, cancel, final model, evaluation), :mod:`.result` (what a run returns).
"""
from drop_core.config import DEFAULT_DATASET, ResolvedConfig, RunConfig, resolve, run_key
from drop_core.pipeline.lifecycle import Cancelled, StopPoll, environment, run
from drop_core.pipeline.query import QueryPlan, QueryStageResult, query_plan, query_stage
from drop_core.pipeline.result import RunResult
from drop_core.pipeline.subset import empty_class_warnings, select_subset

__all__ = ["DEFAULT_DATASET", "Cancelled", "QueryPlan", "QueryStageResult", "ResolvedConfig", "RunConfig",
           "RunResult", "StopPoll", "empty_class_warnings", "environment", "query_plan", "query_stage", "resolve",
           "run", "run_key", "select_subset"]
