"""The Flask class of the app: per-request framework work done once per process where it can be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, request, url_for


class LikenessFlask(Flask):
    """Flask, with the answers that cannot change between requests remembered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._static_urls: dict[tuple[str, str], str] = {}
        self.jinja_env.globals["static_url"] = self.static_url

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return the function as Flask runs it (checked once per function)."""
        try:
            return self._sync[func]
        except KeyError:
            made = self._sync[func] = super().ensure_sync(func)
            return made
        except TypeError:  # an unhashable callable: check it every time
            return super().ensure_sync(func)

    def static_url(self, filename: str) -> str:
        """Return the URL of a static file (built once per script root and file)."""
        key = (request.script_root, filename)
        url = self._static_urls.get(key)
        if url is None:
            url = self._static_urls[key] = url_for("static", filename=filename)
        return url
