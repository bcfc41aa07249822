"""Slider state in the URL query string, so that a view can be shared (after tensorflow/playground's state.ts).

One schema (``Param``: name, type, default, bounds) parses the URL, seeds ``st.session_state`` (the widget
keys are the parameter names) and writes the URL back; only values that differ from their default appear
in it. A value the schema rejects, or an unknown key, is reported to the user, never dropped silently.
Streamlit's own ``bind="query-params"`` is not used because it discards invalid values without a word.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

IGNORED_KEYS = frozenset({"embed", "embed_options"})   # Streamlit's own query parameters


@dataclass(frozen=True)
class Param:
    """One URL/slider parameter: ``kind`` is float or int; values outside [lo, hi] are rejected."""

    name: str
    kind: type
    default: float | int
    lo: float | int
    hi: float | int
    step: float | int
    label: str
    help: str = ""

    def parse(self, raw: str) -> float | int:
        """The value of the URL text ``raw``; ValueError with a user-facing reason if it is not acceptable."""
        try:
            value = self.kind(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not self.lo <= value <= self.hi:
            kind = "a number" if self.kind is float else "a whole number"
            raise ValueError(f"it must be {kind} from {self.lo} to {self.hi}")
        return value

    def format(self, value: float | int) -> str:
        """The URL text of ``value``: 10 significant digits, so slider round-off (1.5000000000000002) is hidden."""
        return str(int(value)) if self.kind is int else f"{float(value):.10g}"


Schema = tuple[Param, ...]


def parse_query(schema: Schema, query: Mapping[str, Any]) -> tuple[dict[str, float | int], list[str]]:
    """Valid values found in ``query`` by parameter name, and one message per rejected value or unknown key."""
    by_name = {p.name: p for p in schema}
    values: dict[str, float | int] = {}
    problems: list[str] = []
    for key, raw in query.items():
        if key in IGNORED_KEYS:
            continue
        text = raw[-1] if isinstance(raw, list) else raw
        param = by_name.get(key)
        if param is None:
            problems.append(f"The link's parameter '{key}={text}' is not a setting of this page; it was ignored.")
            continue
        try:
            values[key] = param.parse(text)
        except ValueError as err:
            problems.append(
                f"The link's value '{key}={text}' was rejected ({err}); "
                f"'{param.label}' starts at its default {param.format(param.default)} instead."
            )
    return values, problems


def to_query(schema: Schema, values: Mapping[str, float | int]) -> dict[str, str]:
    """The query parameters for ``values``: only those that differ from their default."""
    return {p.name: p.format(values[p.name]) for p in schema if p.format(values[p.name]) != p.format(p.default)}


def init_state(schema: Schema) -> list[str]:
    """Seed each parameter's widget key from the URL (else its default) where the session has none yet.

    Returns the problems found in the URL, for the page to show with ``st.warning``.
    """
    missing = [p for p in schema if p.name not in st.session_state]
    if not missing:
        return []
    from_url, problems = parse_query(schema, st.query_params.to_dict())
    for p in missing:
        st.session_state[p.name] = from_url.get(p.name, p.default)
    return problems


def current(schema: Schema) -> dict[str, float | int]:
    """The parameters' current values (their widgets' session state)."""
    return {p.name: st.session_state[p.name] for p in schema}


def synced(schema: Schema) -> dict[str, float | int]:
    """The parameters' current values, after making the URL show them (what every page's output fragment reads)."""
    values = current(schema)
    write_query(schema, values)
    return values


def write_query(schema: Schema, values: Mapping[str, float | int]) -> None:
    """Make the URL show exactly the non-default ``values`` (unknown or rejected keys are removed)."""
    wanted = to_query(schema, values)
    for key in list(st.query_params.keys()):
        if key not in wanted and key not in IGNORED_KEYS:
            del st.query_params[key]
    for key, text in wanted.items():
        if st.query_params.get(key) != text:
            st.query_params[key] = text


def slider(param: Param, on_change: Callable[[], None] | None = None) -> float | int:
    """A slider for ``param`` whose value lives in ``st.session_state[param.name]``.

    ``on_change`` runs before the rerun a move causes; ``rerun_fragment(key)`` makes that rerun redraw only
    the fragment ``key`` (the sliders themselves already show their new values).
    """
    return st.slider(
        param.label, min_value=param.lo, max_value=param.hi, step=param.step, key=param.name, help=param.help or None,
        persist_state="session",  # keep the value when the user visits another page and comes back
        on_change=on_change,
    )


def rerun_fragment(*keys: str) -> Callable[[], None]:
    """A widget callback that replaces the app rerun of its interaction by a rerun of the fragments ``keys`` only."""
    return lambda: st.rerun(scope=list(keys))
