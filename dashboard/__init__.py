"""The Streamlit dashboard: ``streamlit run dashboard/Home.py``.

- ``Home.py``: the router (``st.navigation``); pages in ``views/`` stay thin.
- ``state.py``: settings from the environment and process-wide cached resources (index, model,
  job manager, run views); ``widgets.py``: shared UI pieces (job progress, pickers).
- ``jobs.py``, ``charts.py``, ``results.py``, ``media.py``, ``uploads.py``: no UI code, testable without
  Streamlit (none of them imports it).
"""
