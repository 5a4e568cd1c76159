"""The dashboard's entry point: ``streamlit run dashboard/Home.py``.

A router only: it sets up the page and logging and hands over to the page the user chose.
Pages live in ``dashboard/views/`` and are listed once, in :mod:`dashboard.pages`.
"""

from __future__ import annotations

import logging

import streamlit as st

from dashboard.pages import HOME, sections
from dashboard.prefetch import prefetch
from dashboard.warmup import read_ahead, warm_up

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
logging.captureWarnings(True)

st.set_page_config(page_title="WebSSL Lens", page_icon=":material/center_focus_strong:", layout="wide")


@st.cache_resource(show_spinner=False)
def _warmed_up():
    """The pages' modules, imported in the background once per server process, then what the
    first clicks need (the newest run, Browse's first thumbnails, a large collection's search)."""
    return warm_up(then=read_ahead)


try:
    st.navigation(
        {
            section: [st.Page(p.path, title=p.title, icon=p.icon, default=p is HOME) for p in pages]
            for section, pages in sections().items()
        }
    ).run()
    prefetch()  # after the page: the browser loads the run page's code once this page is drawn
finally:
    _warmed_up()  # after the first page's own work, which it slowed down (the GIL, 2 cores)
