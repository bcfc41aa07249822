"""What a Theory page shows as its headline: the rule table of ``app.rule_table``, read back from an AppTest."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.rule_table import HEADLINE


def rule_table_shown(at: AppTest) -> dict[str, str]:
    """Rule -> worst-class risk as the page prints it (empty when the page shows no rule table)."""
    texts = [m.value for m in at.markdown]
    if HEADLINE not in texts:
        return {}
    table = texts[texts.index(HEADLINE) + 1]
    rows = [line.strip().strip("|").split("|") for line in table.splitlines()[2:]]
    return {cells[0].strip(): cells[1].strip().strip("*") for cells in rows}
