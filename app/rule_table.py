"""The Theory pages' headline numbers: every rule's worst-class risk as one Markdown table (pure, no Streamlit).

One table element instead of a row of ``st.metric`` cards: Streamlit's front end re-renders each card with its
own styled components on every slider move, which cost the browser about 70 ms per move on the Mixture page.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

HEADLINE = "**Worst-class risk of each rule** (lower is better; the change is against the full data)"
FULL = "Full data"
Column = tuple[str, Callable[[Mapping[str, Any]], str]]   # header, cell text of one rule's row


def _change(risk: float, full: float) -> str:
    """The worst-class risk against the full data's, red when worse and green when better (blank under 5e-4)."""
    change = risk - full
    if abs(change) < 5e-4:
        return ""
    return f":{'red' if change > 0 else 'green'}[{change:+.3f}]"


def rule_table(rows: Iterable[Mapping[str, Any]], extra: Iterable[Column] = ()) -> str:
    """Markdown: one row per rule (``rule``, ``worst_class_risk``, ``average_risk``, ``kept``) plus ``extra`` columns.

    The first row whose rule is "Full data" is the reference of the change column.
    """
    rows, extra = list(rows), list(extra)
    full = next(r["worst_class_risk"] for r in rows if r["rule"] == FULL)
    head = ["Rule", "Worst-class risk", "Change", "Average risk", "Keeps", *(h for h, _ in extra)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["rule"], f"**{r['worst_class_risk']:.3f}**",
                 "" if r["rule"] == FULL else _change(r["worst_class_risk"], full),
                 f"{r['average_risk']:.3f}", f"{r['kept']:.0%}", *(cell(r) for _, cell in extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
