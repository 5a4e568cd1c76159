"""Match a video: start a run in the background (:mod:`dashboard.match_launcher`), then explore a
stored run (:mod:`dashboard.run_explorer`)."""

from __future__ import annotations

import streamlit as st

from dashboard import keys, match_launcher, run_explorer
from dashboard.state import get_index
from dashboard.widgets import page_header, show_notice

index = get_index()
page_header("Match a video", "Find where the images of a collection appear in a video, frame by frame.")

# job progress and notices come and go in one slot, so the run below keeps its place in the page
# (an element that moves is one the browser builds anew)
with st.container():
    running = match_launcher.follow()
    show_notice(keys.MATCH_ADMIN_NOTICE, once=True)
runs = index.list_runs(limit=300)
match_launcher.show(index, expanded=not runs or running, running=running)
if runs:
    run_explorer.show(runs)
else:
    st.info("No runs yet: pick a video and a collection above and press **Run match**.")
