"""The languages a study may run in, a study's chosen languages, and a participant's language."""

from __future__ import annotations

from typing import Any

from flask import request

LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "Deutsch",
    "es": "Español",
    "fr": "Français",
    "zh": "简体中文",
    "ar": "العربية",
}
RTL_LANGUAGES = frozenset({"ar"})


def study_languages(study: Any) -> list[str]:
    """Return the study's languages, its default first; ["en"] when it chose none."""
    chosen = (getattr(study, "settings", None) or {}).get("languages") or []
    if not isinstance(chosen, list):
        return ["en"]
    languages = [code for code in dict.fromkeys(chosen) if code in LANGUAGES]
    return languages or ["en"]


def participant_language(study: Any) -> str:
    """Return the language a participant sees the study in: the link's ?lang= when the study
    offers it, else the study's default."""
    languages = study_languages(study)
    asked = request.args.get("lang", "")
    return asked if asked in languages else languages[0]
