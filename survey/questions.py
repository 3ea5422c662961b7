"""Questions the researcher writes: their kinds, the builder's checks and the participant's."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from survey.i18n import gettext as _

KINDS = ("likert", "choice", "checkboxes", "number", "text")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
VALUE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
# Codes that would collide with participants.csv's own columns (survey/exports/tables.py).
RESERVED_CODES = frozenset(
    (
        "participant list status started_at completed_at duration_s device source "
        "attention_passed attention_total expired_at simulated block_order block_order_row "
        "recruitment_platform recruitment_id"
    ).split()
)
MAX_TEXT_LENGTH = 2000
MAX_OPTIONS = 50
MAX_LIKERT_POINTS = 21
MAX_NUMBER = 1e12


@dataclass
class Spec:
    """The cleaned settings of a question, or the errors that stopped them, by field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def error(self, name: str, message: str) -> None:
        """Add an error next to a field."""
        self.errors.setdefault(name, []).append(message)


def _slug(label: str) -> str:
    """Return an option value made from its label ("Prefer not to say" -> prefer_not_to_say)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40]


def _int(text: str | None, name: str, label: str, spec: Spec) -> int | None:
    """Read an optional whole number; an error says what was written."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        spec.error(name, f"{label} must be a whole number; you wrote “{text}”.")
        return None


def _number(text: str | None, name: str, label: str, spec: Spec) -> float | int | None:
    """Read an optional number (whole or decimal)."""
    text = (text or "").strip()
    if not text:
        return None
    value = parse_number(text)
    if value is None:
        spec.error(name, f"{label} must be a number; you wrote “{text}”.")
    return value


def parse_number(text: str) -> float | int | None:
    """Return a finite number written as text (an int when whole), or None."""
    try:
        value = float(text.replace(",", ".") if text.count(",") == 1 and "." not in text else text)
    except ValueError:
        return None
    if value != value or abs(value) > MAX_NUMBER:
        return None
    return int(value) if value.is_integer() else value


def parse_options(text: str, spec: Spec) -> list[list[str]]:
    """Read one option per line, "Label" or "value = Label"; errors for bad or repeated ones."""
    options: list[list[str]] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        value, sep, label = line.partition("=")
        value, label = (value.strip(), label.strip()) if sep else (_slug(line), line)
        if not label or not VALUE_RE.match(value):
            spec.error(
                "options",
                f"“{line}” is not an option: write a label, or a short value (letters, digits, "
                "_ . -), an equals sign and the label.",
            )
            continue
        if any(v == value for v, _ in options):
            spec.error("options", f"Two options have the value “{value}”: give each its own.")
            continue
        options.append([value, label[:200]])
    if len(options) < 2 and "options" not in spec.errors:
        spec.error("options", "Write at least two options, one per line.")
    if len(options) > MAX_OPTIONS:
        spec.error("options", f"At most {MAX_OPTIONS} options; you wrote {len(options)}.")
    return options


def parse_anchors(text: str, low: int, high: int, spec: Spec) -> dict[str, str]:
    """Read "1 = Not at all" lines: a label for any point of the scale."""
    anchors: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        point, sep, label = line.partition("=")
        try:
            value = int(point.strip())
        except ValueError:
            value = None
        if not sep or value is None or not label.strip():
            spec.error("anchors", f"“{line}” is not an anchor: write a point, “=” and its label.")
        elif not low <= value <= high:
            spec.error("anchors", f"Point {value} is not on the scale {low} to {high}.")
        else:
            anchors[str(value)] = label.strip()[:100]
    return anchors


def clean_spec(kind: str, form: Mapping[str, Any]) -> Spec:
    """Check the kind's settings as the builder posts them (text fields); return them cleaned."""
    spec = Spec()
    if kind == "likert":
        low = _int(form.get("min"), "min", "The lowest point", spec)
        high = _int(form.get("max"), "max", "The highest point", spec)
        if low is None and "min" not in spec.errors:
            spec.error("min", "Give the scale's lowest point, such as 1.")
        if high is None and "max" not in spec.errors:
            spec.error("max", "Give the scale's highest point, such as 7.")
        if low is not None and high is not None:
            if high <= low:
                spec.error("max", f"The highest point must be above the lowest ({low}).")
            elif high - low + 1 > MAX_LIKERT_POINTS:
                spec.error(
                    "max",
                    f"A scale has at most {MAX_LIKERT_POINTS} points; this has {high - low + 1}.",
                )
            else:
                anchors = parse_anchors(form.get("anchors", ""), low, high, spec)
                spec.values = {"min": low, "max": high, "anchors": anchors}
    elif kind in ("choice", "checkboxes"):
        spec.values = {"options": parse_options(form.get("options", ""), spec)}
    elif kind == "number":
        low = _number(form.get("min"), "min", "The smallest answer", spec)
        high = _number(form.get("max"), "max", "The largest answer", spec)
        if low is not None and high is not None and high < low:
            spec.error("max", f"The largest answer must not be below the smallest ({low}).")
        spec.values = {"min": low, "max": high}
    elif kind == "text":
        length = _int(form.get("max_length"), "max_length", "The longest answer", spec)
        if length is None and "max_length" not in spec.errors:
            length = 200
        if length is not None and not 1 <= length <= MAX_TEXT_LENGTH:
            spec.error(
                "max_length",
                f"The longest answer must be 1 to {MAX_TEXT_LENGTH} characters; "
                f"you wrote {length}.",
            )
        spec.values = {"max_length": length}
    else:
        spec.error("kind", "Choose a kind of question.")
    if spec.errors:
        spec.values = {}
    return spec


def check_code(code: str, taken: set[str]) -> str | None:
    """Return why a question's code cannot be used, or None."""
    if not CODE_RE.match(code):
        return (
            "The code names the column in participants.csv: a lower-case letter, then up to 31 "
            f"lower-case letters, digits or _; you wrote “{code}”."
        )
    if code in RESERVED_CODES:
        return f"“{code}” is already a column of participants.csv; choose another code."
    if code in taken:
        return f"Another question has the code “{code}”."
    return None


def spec_as_form(kind: str, spec: Mapping[str, Any]) -> dict[str, str]:
    """Write a stored spec back as the builder's text fields."""
    if kind in ("choice", "checkboxes"):
        return {"options": "\n".join(f"{v} = {label}" for v, label in spec.get("options", []))}
    if kind == "likert":
        anchors = spec.get("anchors", {})
        return {
            "min": str(spec.get("min", "")),
            "max": str(spec.get("max", "")),
            "anchors": "\n".join(f"{p} = {anchors[p]}" for p in sorted(anchors, key=int)),
        }
    if kind == "number":
        return {k: "" if spec.get(k) is None else str(spec[k]) for k in ("min", "max")}
    if kind == "text":
        return {"max_length": str(spec.get("max_length", ""))}
    return {}


# --- the default demographics --------------------------------------------------------------

# Asked by new studies and by those from before the builder (each call returns its own copy).
GENDER_QUESTION: dict[str, Any] = {
    "code": "gender",
    "kind": "choice",
    "text": "Your gender",
    "required": False,
    "spec": {
        "options": [
            ["woman", "Woman"],
            ["man", "Man"],
            ["non_binary", "Non-binary"],
            ["other", "Another gender"],
            ["prefer_not_to_say", "Prefer not to say"],
        ]
    },
}


def default_questions() -> list[dict[str, Any]]:
    """Return the questions a new study starts with: optional demographics the team edits."""
    return [
        {
            "code": "age_band",
            "kind": "choice",
            "text": "Your age",
            "required": False,
            "spec": {
                "options": [
                    ["18_24", "18–24"],
                    ["25_34", "25–34"],
                    ["35_44", "35–44"],
                    ["45_54", "45–54"],
                    ["55_64", "55–64"],
                    ["65_plus", "65 or older"],
                    ["prefer_not_to_say", "Prefer not to say"],
                ]
            },
        },
        copy.deepcopy(GENDER_QUESTION),
        {
            "code": "ai_familiarity",
            "kind": "likert",
            "text": "How familiar are you with AI tools that make or edit images?",
            "required": False,
            "spec": {"min": 1, "max": 5, "anchors": {"1": "Not at all", "5": "Very familiar"}},
        },
        {
            "code": "recognised_anyone",
            "kind": "choice",
            "text": "Did you recognise any of the people in the photos?",
            "required": False,
            "spec": {"options": [["yes", "Yes"], ["no", "No"], ["not_sure", "Not sure"]]},
        },
    ]


def legacy_questions() -> list[dict[str, Any]]:
    """Return the age and gender questions studies asked before the builder (migration
    0009_questions gave them to existing studies)."""
    return [
        {
            "code": "age",
            "kind": "number",
            "text": "Your age in years",
            "required": False,
            "spec": {"min": 16, "max": 110},
        },
        copy.deepcopy(GENDER_QUESTION),
    ]


# --- a participant's answers ---------------------------------------------------------------


@dataclass(frozen=True)
class Asked:
    """A question as the participant's page shows and checks it."""

    code: str
    kind: str
    text: str
    required: bool
    spec: Mapping[str, Any]

    @property
    def points(self) -> list[tuple[str, str]]:
        """Return a Likert scale's (point, anchor or "") pairs."""
        anchors = self.spec.get("anchors", {})
        return [
            (str(p), anchors.get(str(p), "")) for p in range(self.spec["min"], self.spec["max"] + 1)
        ]


def read_answers(questions: list[Asked], formdata: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Return (answers by code, errors by code) for a posted questions page.

    Answers are typed: a Likert point and a whole number as int, a decimal as float, checkboxes
    as a list of values, choices and text as str. An unanswered optional question is left out.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for q in questions:
        if q.kind == "checkboxes":
            picked = [v for v in formdata.getlist(q.code) if v]
            allowed = [v for v, _ in q.spec.get("options", [])]
            if any(v not in allowed for v in picked) or len(set(picked)) != len(picked):
                errors[q.code] = _("Choose among the options shown.")
            elif picked:
                values[q.code] = [v for v in allowed if v in picked]
            elif q.required:
                errors[q.code] = _("Please tick at least one.")
            continue
        raw = (formdata.get(q.code) or "").strip()
        if not raw:
            if q.required:
                errors[q.code] = _("Please answer this question.")
            continue
        if q.kind == "likert":
            if raw not in {p for p, _ in q.points}:
                errors[q.code] = _(
                    "Choose a point from %(low)s to %(high)s.",
                    low=q.spec["min"],
                    high=q.spec["max"],
                )
            else:
                values[q.code] = int(raw)
        elif q.kind == "choice":
            if raw not in {v for v, _ in q.spec.get("options", [])}:
                errors[q.code] = _("Choose one of the options shown.")
            else:
                values[q.code] = raw
        elif q.kind == "number":
            number = parse_number(raw)
            low, high = q.spec.get("min"), q.spec.get("max")
            if number is None:
                errors[q.code] = _("Enter a number; you wrote “%(text)s”.", text=raw[:40])
            elif (low is not None and number < low) or (high is not None and number > high):
                errors[q.code] = _number_range_error(low, high, raw[:40])
            else:
                values[q.code] = number
        else:
            limit = int(q.spec.get("max_length") or 200)
            if len(raw) > limit:
                errors[q.code] = _(
                    "At most %(limit)s characters; this has %(length)s.",
                    limit=limit,
                    length=len(raw),
                )
            else:
                values[q.code] = raw
    return values, errors


def _number_range_error(low: float | None, high: float | None, text: str) -> str:
    """Return, in the page's language, the error of a number outside the question's range."""
    if low is None:
        return _("Enter a number up to %(high)s; you wrote %(text)s.", high=high, text=text)
    if high is None:
        return _("Enter a number from %(low)s; you wrote %(text)s.", low=low, text=text)
    return _(
        "Enter a number from %(low)s to %(high)s; you wrote %(text)s.",
        low=low,
        high=high,
        text=text,
    )
