"""The speed benchmark (``python -m bench``); see :mod:`bench.run` and the Performance section of README.md."""
