"""DRoP Explorer: the app's frame (navigation and shared sidebar only). Pages live in ``app/``.

Start with ``.venv/bin/streamlit run streamlit_app.py``. To add a page, add an ``st.Page`` to a section of
``SECTIONS``; each page file draws itself when Streamlit runs it.
"""
from __future__ import annotations

import streamlit as st

SECTIONS: dict[str, list[st.Page]] = {
    "Theory": [
        st.Page(
            "app/pages/toy_model.py", title="Toy model", icon=":material/functions:", url_path="theory", default=True
        ),
        st.Page("app/pages/mixture.py", title="Mixture", icon=":material/scatter_plot:", url_path="mixture"),
    ],
    "Experiments": [
        st.Page("app/pages/experiment.py", title="Experiment", icon=":material/science:", url_path="experiment"),
        st.Page("app/pages/results.py", title="Results", icon=":material/table_chart:", url_path="results"),
    ],
    "Help": [
        st.Page("app/pages/guide.py", title="Guide", icon=":material/menu_book:", url_path="guide"),
    ],
}

st.set_page_config(page_title="DRoP Explorer", page_icon=":material/content_cut:", layout="wide")
page = st.navigation(SECTIONS)
with st.sidebar:
    st.caption(
        "**DRoP Explorer** — how data pruning biases a classifier class by class, and how DRoP "
        "(Distributionally Robust Pruning, ICLR 2025) repairs it."
    )
page.run()
