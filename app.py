"""Entry point for `flask --app app` and gunicorn (`gunicorn app:app`)."""

import sys

from survey import create_app
from survey.config import ConfigError

__all__ = ["app", "create_app"]

try:
    app = create_app()
except ConfigError as exc:  # a wrong setting: say which, not a traceback
    sys.exit(f"Likeness configuration error: {exc}")
