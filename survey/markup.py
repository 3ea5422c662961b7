"""Researcher-written Markdown (consent, instructions, debrief) rendered to a safe HTML subset."""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_SCHEMES = ("http:", "https:", "mailto:")


def _link_allowed(url: str) -> bool:
    """Tell whether a link target is http, https or mailto (relative links are refused too)."""
    # Browsers ignore whitespace and control characters inside a scheme ("java\tscript:").
    cleaned = "".join(ch for ch in url if ch > " ").lower()
    return cleaned.startswith(ALLOWED_SCHEMES)


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    """Build the one CommonMark renderer (raw HTML off, links restricted)."""
    md = MarkdownIt("commonmark", {"html": False})
    # Images could only come from another host, and a study runs without outside requests.
    md.disable("image")
    md.validateLink = _link_allowed
    md.add_render_rule("link_open", _render_link_open)
    return md


def _render_link_open(self, tokens, idx, options, env) -> str:
    """Open links in a new tab, so following one never leaves the survey page."""
    token = tokens[idx]
    token.attrSet("target", "_blank")
    token.attrSet("rel", "noopener noreferrer")
    return self.renderToken(tokens, idx, options, env)


def render_markdown(text: str | None) -> Markup:
    """Render Markdown to HTML that is safe to insert into a page as is."""
    if not text:
        return Markup("")
    return Markup(_render(text))


@lru_cache(maxsize=256)
def _render(text: str) -> str:
    """Render one text; a study's texts are shown to every participant, so keep them rendered."""
    return _renderer().render(text)
