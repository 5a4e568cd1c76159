"""core.model.int8: isolated, imported only when int8 is asked for."""

from __future__ import annotations


def test_the_default_path_never_imports_the_deprecated_int8_api(tiny_model_dir):
    """int8 is isolated in core.model.int8: fp32 loading neither imports it nor warns."""
    import subprocess
    import sys

    code = (
        "import sys, warnings; warnings.simplefilter('error', DeprecationWarning);"
        "from core.model.loading import load_model;"
        f"load_model({str(tiny_model_dir)!r}, device='cpu', precision='fp32');"
        "assert 'core.model.int8' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
