"""What the researcher reads about a question: its kind's name and its allowed values in a
line, in the page's language on the questions page and in English in the codebook.

Kept apart from survey/questions.py, whose messages are the participant's (babel.cfg): these
are the researcher's (babel-researcher.cfg).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from survey.i18n import N_, gettext, translated

# In English, marked for the researcher's catalog: the codebook reads them as they are, the
# questions page translates them (`kind_label`).
KIND_LABELS = {
    "likert": N_("Rating scale (Likert)"),
    "choice": N_("Multiple choice (one answer)"),
    "checkboxes": N_("Checkboxes (any number of answers)"),
    "number": N_("Number"),
    "text": N_("Short text"),
}


def kind_label(kind: str) -> str:
    """Return a question kind's name in the page's language."""
    return translated(KIND_LABELS[kind])


def describe(kind: str, spec: Mapping[str, Any], english: bool = False) -> str:
    """Return the allowed values in a line: in the page's language for the builder's list, in
    English for the codebook (`english`). The researcher's own anchors and options, and the
    separators between them (data, as stored), are shown as they are."""
    message, variables = _allowed(kind, spec)
    if english:
        return message % variables if variables else message
    return gettext(message, **variables)


def _allowed(kind: str, spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Return the line of allowed values as a message in English and its variables."""
    if kind == "likert":
        anchors = spec.get("anchors", {})
        named = "; ".join(f"{p} = {anchors[p]}" for p in sorted(anchors, key=int))
        bounds = {"low": spec["min"], "high": spec["max"]}
        if named:
            return N_("integers %(low)s to %(high)s (%(anchors)s)"), {**bounds, "anchors": named}
        return N_("integers %(low)s to %(high)s"), bounds
    if kind in ("choice", "checkboxes"):
        listed = {"options": "; ".join(f"{v} = {label}" for v, label in spec.get("options", []))}
        if kind == "choice":
            return N_("one of %(options)s"), listed
        return N_("any of %(options)s, several joined by '; '"), listed
    if kind == "number":
        low, high = spec.get("min"), spec.get("max")
        if low is None and high is None:
            return N_("any number"), {}
        if high is None:
            return N_("a number from %(low)s"), {"low": low}
        if low is None:
            return N_("a number up to %(high)s"), {"high": high}
        return N_("a number from %(low)s to %(high)s"), {"low": low, "high": high}
    return N_("free text, at most %(length)s characters"), {"length": spec.get("max_length")}
