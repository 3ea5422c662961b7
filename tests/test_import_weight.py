"""A web worker starts without the scientific stack: issue #4's export must fit in 150 MB.

pandas, NumPy, SciPy, matplotlib and statsmodels take well over 100 MB of a process. Only the
report's computation and figures need them, and they import them when they run; starting the
app, and the analysis modules the web pages read (vocabulary, results.json readers, plan
checks, claim wording, the R script), must not load them. Each check runs in a fresh
interpreter, since this test process has long imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "numpy", "scipy", "matplotlib", "statsmodels")
REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
HINT = (
    "to see which module imports them: .venv/bin/python -X importtime -c 'import app' "
    "2>&1 | less (a module is listed after, and less indented than, what it imports)"
)


def heavy_modules_after(code: str) -> list[str]:
    """Run `code` in a fresh interpreter from the project root; the heavy modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_app_starts_without_pandas_numpy_scipy_matplotlib_or_statsmodels(tmp_path):
    """create_app with every blueprint registered leaves the scientific stack unloaded."""
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'weight.db'}",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "MEDIA_DIR": str(tmp_path / "media"),
        "WTF_CSRF_ENABLED": False,
    }
    code = f"from survey import create_app\napp = create_app({config!r})\n"
    assert heavy_modules_after(code) == [], HINT


def test_the_analysis_modules_the_web_pages_read_are_light():
    """The vocabulary, results.json readers, plan checks and claim wording need no pandas."""
    code = (
        "import analysis.findings, analysis.plan, analysis.results, analysis.rscript, "
        "analysis.vocabulary\n"
    )
    assert heavy_modules_after(code) == []
