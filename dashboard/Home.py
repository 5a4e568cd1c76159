"""The dashboard's entry point: ``streamlit run dashboard/Home.py``.

A router only: it sets up the page and logging and hands over to the page the user chose.
Pages live in ``dashboard/views/``; shared helpers in ``dashboard/*.py``.
"""

from __future__ import annotations

import logging

import streamlit as st

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="WebSSL Lens", page_icon=":material/center_focus_strong:", layout="wide")

pages = {
    "": [st.Page("views/home.py", title="Home", icon=":material/home:", default=True)],
    "Images": [
        st.Page("views/collections.py", title="Collections", icon=":material/photo_library:"),
        st.Page("views/browse.py", title="Browse & search", icon=":material/grid_view:"),
    ],
    "Videos": [st.Page("views/match.py", title="Match a video", icon=":material/movie:")],
    "What the model sees": [
        st.Page("views/explore.py", title="Explore an image", icon=":material/visibility:"),
        st.Page("views/render.py", title="Render videos", icon=":material/videocam:"),
    ],
}

st.navigation(pages).run()
