"""Preregistration: the analysis plan stated before opening, frozen with its SHA-256."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from analysis.plan import DEFAULT_BAYES_RSCALE, validate_plan
from analysis.vocabulary import FIXED_OUTCOMES
from survey import audit
from survey.extensions import db
from survey.i18n import gettext
from survey.models import Preregistration, Study, utcnow
from survey.researcher import bp
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
from survey.researcher.confirm import confirm_page
from survey.researcher.forms import PreregistrationForm, options, require_button
from survey.researcher.service import plan_row_values, require_not_archived, study_outcomes

# Blank rows offered under the filled ones, for one more hypothesis or bound.
NEW_ROWS = 1


def _outcome_choices(study: Study, plan: dict[str, Any] | None) -> list[str]:
    """Return the outcomes to offer: the study's, plus any the stored plan names."""
    outcomes = study_outcomes(study)
    if plan:
        named = [h["outcome"] for h in plan.get("hypotheses", [])]
        named += list(plan.get("primary_outcomes", [])) + list(plan.get("equivalence_bounds", {}))
        outcomes += [o for o in named if o not in outcomes]
    return outcomes


def outcome_words(outcome: str) -> str:
    """An outcome as the form offers it: in words, with the plan's name for it beside them (a
    rating scale's key is its own name)."""
    fixed = FIXED_OUTCOMES.get(outcome)
    if fixed is None or not fixed.label:
        return outcome
    label = fixed.label
    return f"{label[0].upper()}{label[1:]} ({outcome})"


def _set_choices(form: PreregistrationForm, outcomes: list[str]) -> None:
    """Offer the outcomes in every outcome field of the form."""
    pairs = options((o, outcome_words(o)) for o in outcomes)
    form.primary_outcomes.choices = pairs
    none = options([("", gettext("(none)"))])
    for entry in form.hypotheses:
        entry.form.outcome.choices = [*none, *pairs]
    for entry in form.bounds:
        entry.form.outcome.choices = [*none, *pairs]


def _fill_form(form: PreregistrationForm, plan: dict[str, Any]) -> None:
    """Put a stored plan into the form, with a blank row to add one more."""
    while len(form.hypotheses):
        form.hypotheses.pop_entry()
    for h in plan["hypotheses"]:
        form.hypotheses.append_entry(h)
    while len(form.bounds):
        form.bounds.pop_entry()
    for outcome, (low, high) in plan["equivalence_bounds"].items():
        form.bounds.append_entry({"outcome": outcome, "low": low, "high": high})
    for _ in range(NEW_ROWS):
        form.hypotheses.append_entry()
        form.bounds.append_entry()
    form.primary_outcomes.data = list(plan["primary_outcomes"])
    form.alpha.data = plan["alpha"]
    form.correction.data = plan["correction"]
    form.rating_model.data = plan.get("rating_model", "paired_t")  # plans saved before it
    rules = plan["exclusions"]
    form.exclude_incomplete.data = rules["incomplete"]
    form.exclude_attention.data = rules["attention"]
    form.min_median_rt_ms.data = rules["min_median_rt_ms"]
    form.exclude_straightlining.data = rules["straightlining"]
    form.target_n.data = plan["target_n"]
    # The default shows as the empty field's placeholder rather than as 0.7071067811865476.
    rscale = plan["bayes_rscale"]
    form.bayes_rscale.data = None if rscale == DEFAULT_BAYES_RSCALE else rscale


class PlanErrors(ValueError):
    """A plan the form describes cannot be saved: `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(" ".join(m for messages in errors.values() for m in messages))


def _plan_errors(form: PreregistrationForm, study_outcome_names: list[str]) -> dict[str, list]:
    """Return every problem of the plan the form describes, keyed by form field, in words."""
    errors: dict[str, list[str]] = {}
    known = ", ".join(study_outcome_names) or gettext("none yet: add blocks first")

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    seen: dict[str, int] = {}
    for i, entry in enumerate(form.hypotheses):
        outcome = entry.form.outcome.data
        if not outcome:
            continue
        if outcome not in study_outcome_names:
            add(
                f"hypotheses-{i}-outcome",
                gettext(
                    "Hypothesis %(n)s: %(outcome)s is not measured by this study's blocks "
                    "(measured: %(known)s).",
                    n=i + 1,
                    outcome=repr(outcome),
                    known=known,
                ),
            )
        elif outcome in seen:
            add(
                f"hypotheses-{i}-outcome",
                gettext(
                    "Hypothesis %(n)s is about %(outcome)s, like hypothesis %(other)s: "
                    "give one hypothesis per outcome.",
                    n=i + 1,
                    outcome=outcome,
                    other=seen[outcome] + 1,
                ),
            )
        seen.setdefault(outcome, i)
    for outcome in form.primary_outcomes.data or []:
        if outcome not in study_outcome_names:
            add(
                "primary_outcomes",
                gettext(
                    "Primary outcome %(outcome)s is not measured by this study's blocks "
                    "(measured: %(known)s).",
                    outcome=repr(outcome),
                    known=known,
                ),
            )
    bounded: dict[str, int] = {}
    for i, entry in enumerate(form.bounds):
        e = entry.form
        outcome = e.outcome.data
        if not outcome:
            continue
        if outcome not in study_outcome_names:
            add(
                f"bounds-{i}-outcome",
                gettext(
                    "Bounds %(n)s: %(outcome)s is not measured by this study's blocks "
                    "(measured: %(known)s).",
                    n=i + 1,
                    outcome=repr(outcome),
                    known=known,
                ),
            )
        elif outcome in bounded:
            add(
                f"bounds-{i}-outcome",
                gettext(
                    "Bounds %(n)s are for %(outcome)s, like bounds %(other)s: "
                    "give one pair of bounds per outcome.",
                    n=i + 1,
                    outcome=outcome,
                    other=bounded[outcome] + 1,
                ),
            )
        bounded.setdefault(outcome, i)
        if e.low.errors or e.high.errors:
            continue
        if e.low.data is None or e.high.data is None:
            add(
                f"bounds-{i}-{'low' if e.low.data is None else 'high'}",
                gettext("Give both a lower and an upper bound for %(outcome)s.", outcome=outcome),
            )
            continue
        if not e.low.data < 0:
            add(
                f"bounds-{i}-low",
                gettext(
                    "The lower bound must be below 0; you wrote %(value)s.",
                    value=f"{e.low.data:g}",
                ),
            )
        if not e.high.data > 0:
            add(
                f"bounds-{i}-high",
                gettext(
                    "The upper bound must be above 0; you wrote %(value)s.",
                    value=f"{e.high.data:g}",
                ),
            )
    return errors


def plan_from_form(form: PreregistrationForm, study_outcome_names: list[str]) -> dict[str, Any]:
    """Build a plan from the form and check it; PlanErrors says what is wrong, by field."""
    errors = _plan_errors(form, study_outcome_names)
    if errors:
        raise PlanErrors(errors)
    hypotheses = [
        {"outcome": e.outcome.data, "direction": e.direction.data, "text": e.text.data or ""}
        for e in (entry.form for entry in form.hypotheses)
        if e.outcome.data
    ]
    bounds = {
        e.outcome.data: [e.low.data, e.high.data]
        for e in (entry.form for entry in form.bounds)
        if e.outcome.data
    }
    plan = {
        "hypotheses": hypotheses,
        "primary_outcomes": list(form.primary_outcomes.data or []),
        "alpha": form.alpha.data,
        "correction": form.correction.data,
        "rating_model": form.rating_model.data or "paired_t",
        "exclusions": {
            "incomplete": bool(form.exclude_incomplete.data),
            "attention": bool(form.exclude_attention.data),
            "min_median_rt_ms": form.min_median_rt_ms.data,
            "straightlining": bool(form.exclude_straightlining.data),
        },
        "equivalence_bounds": bounds,
        "target_n": form.target_n.data,
    }
    if form.bayes_rscale.data is not None:
        plan["bayes_rscale"] = form.bayes_rscale.data
    # The form's checks above cover what the plan's own check refuses; it stays the last word.
    return validate_plan(plan)


def _show_plan_errors(form: PreregistrationForm, errors: dict[str, list[str]]) -> None:
    """Put each message beside its field (rows' fields by their form names)."""
    for key, messages in errors.items():
        parts = key.split("-")
        if len(parts) == 3:
            field = getattr(form, parts[0]).entries[int(parts[1])].form[parts[2]]
        else:
            field = form[key]
        field.errors = [*field.errors, *messages]


def _page(study: Study, role: str, form: PreregistrationForm, status: int = 200, error: str = ""):
    """Render the preregistration page: the form, or the frozen plan read-only."""
    prereg = study.preregistration
    frozen = prereg is not None and prereg.frozen_at is not None
    can_edit = (
        ROLE_RANK[role] >= ROLE_RANK["editor"]
        and not frozen
        and not study.design_locked
        and study.state != "archived"
    )
    return (
        render_template(
            "researcher/preregistration.html",
            study=study,
            role=role,
            prereg=prereg,
            frozen=frozen,
            can_edit=can_edit,
            form=form,
            error=error,
        ),
        status,
    )


def _require_editable(study: Study) -> None:
    """Refuse (409) a change to a frozen plan or to the plan of a study that has opened."""
    require_not_archived(study)
    prereg = study.preregistration
    if prereg is not None and prereg.frozen_at is not None:
        abort(
            409,
            description=gettext(
                "The plan was frozen on %(when)s UTC and cannot change.",
                when=f"{prereg.frozen_at:%Y-%m-%d %H:%M}",
            ),
        )
    if study.design_locked:
        abort(
            409,
            description=gettext(
                "The study has opened: a plan written now would not be a preregistration."
            ),
        )


@bp.get("/studies/<int:study_id>/preregistration")
@requires_role("viewer")
def preregistration(study: Study, role: str):
    """Show the plan: a form until it is frozen, then read-only with its hash and time."""
    prereg = study.preregistration
    plan = prereg.plan if prereg is not None else validate_plan({})
    form = PreregistrationForm(formdata=None)
    _fill_form(form, plan)
    _set_choices(form, _outcome_choices(study, plan))
    return _page(study, role, form)


@bp.post("/studies/<int:study_id>/preregistration")
@requires_role("editor")
def preregistration_save(study: Study, role: str):
    """Save the plan as canonical JSON with its SHA-256 (not frozen yet)."""
    study = lock_for_change(study)
    _require_editable(study)
    form = PreregistrationForm()
    outcomes = study_outcomes(study)
    _set_choices(
        form, _outcome_choices(study, study.preregistration.plan if study.preregistration else None)
    )
    form_ok = form.validate_on_submit()
    errors = _plan_errors(form, outcomes)
    if not form_ok or errors:
        _show_plan_errors(form, errors)
        return _page(
            study, role, form, 400, error=gettext("Nothing was saved: see the marked fields.")
        )
    try:
        plan = plan_from_form(form, outcomes)
    except ValueError as err:
        return _page(
            study, role, form, 400, error=gettext("Nothing was saved: %(problem)s", problem=err)
        )
    values = plan_row_values(plan)
    prereg = study.preregistration
    if prereg is None:
        study.preregistration = Preregistration(created_by_id=current_user.id, **values)
    else:
        prereg.plan, prereg.plan_json, prereg.sha256 = (
            values["plan"],
            values["plan_json"],
            values["sha256"],
        )
    audit.record(
        "preregistration.save", researcher=current_user, study=study, sha256=values["sha256"]
    )
    db.session.commit()
    flash(
        gettext("Plan saved. It freezes when the study opens, or now with “Freeze plan”."),
        "success",
    )
    return redirect(url_for("researcher.preregistration", study_id=study.id))


@bp.route("/studies/<int:study_id>/preregistration/freeze", methods=["GET", "POST"])
@requires_role("editor")
def preregistration_freeze(study: Study, role: str):
    """Ask, then freeze the saved plan now: from here on it is shown read-only with its hash."""
    if request.method == "GET":
        _require_editable(study)
        prereg = study.preregistration
        if prereg is None:
            abort(409, description=gettext("Save a plan before freezing it."))
        return confirm_page(
            study,
            role,
            title=gettext("Freeze the plan now?"),
            lines=[
                gettext(
                    "The saved plan is fixed with the time and its SHA-256, %(sha256)s…: it can "
                    "never change again, and the report marks each test as preregistered or "
                    "exploratory against it.",
                    sha256=prereg.sha256[:12],
                ),
                gettext("Unsaved changes on the plan page are not part of it: save them first."),
            ],
            note=gettext("This cannot be undone."),
            action=url_for("researcher.preregistration_freeze", study_id=study.id),
            button=gettext("Freeze the plan"),
            button_class="",
            back=url_for("researcher.preregistration", study_id=study.id),
        )
    study = lock_for_change(study)
    _require_editable(study)
    require_button()
    prereg = study.preregistration
    if prereg is None:
        abort(409, description=gettext("Save a plan before freezing it."))
    prereg.frozen_at = utcnow()
    audit.record(
        "preregistration.freeze", researcher=current_user, study=study, sha256=prereg.sha256
    )
    db.session.commit()
    flash(gettext("The plan is frozen."), "success")
    return redirect(url_for("researcher.preregistration", study_id=study.id))
