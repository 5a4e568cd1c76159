"""The speed benchmark (``python -m bench``); see :mod:`bench.run` and README_PERFORMANCE.md."""
