"""Preregistration: the analysis plan stated before opening, frozen with its SHA-256."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from analysis.plan import DEFAULT_BAYES_RSCALE, validate_plan
from survey import audit
from survey.extensions import db
from survey.models import Preregistration, Study, utcnow
from survey.researcher import bp
from survey.researcher.access import ROLE_RANK, lock_for_change, requires_role
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


def _set_choices(form: PreregistrationForm, outcomes: list[str]) -> None:
    """Offer the outcomes in every outcome field of the form."""
    pairs = options((o, o) for o in outcomes)
    form.primary_outcomes.choices = pairs
    for entry in form.hypotheses:
        entry.form.outcome.choices = [*options([("", "(none)")]), *pairs]
    for entry in form.bounds:
        entry.form.outcome.choices = [*options([("", "(none)")]), *pairs]


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
    rules = plan["exclusions"]
    form.exclude_incomplete.data = rules["incomplete"]
    form.exclude_attention.data = rules["attention"]
    form.min_median_rt_ms.data = rules["min_median_rt_ms"]
    form.exclude_straightlining.data = rules["straightlining"]
    form.target_n.data = plan["target_n"]
    # The default shows as the empty field's placeholder rather than as 0.7071067811865476.
    rscale = plan["bayes_rscale"]
    form.bayes_rscale.data = None if rscale == DEFAULT_BAYES_RSCALE else rscale


def plan_from_form(form: PreregistrationForm, study_outcome_names: list[str]) -> dict[str, Any]:
    """Build a plan from the form and check it; ValueError names the field at fault."""
    hypotheses = [
        {"outcome": e.outcome.data, "direction": e.direction.data, "text": e.text.data or ""}
        for e in (entry.form for entry in form.hypotheses)
        if e.outcome.data
    ]
    bounds: dict[str, list[float]] = {}
    for entry in form.bounds:
        e = entry.form
        if not e.outcome.data:
            continue
        if e.low.data is None or e.high.data is None:
            raise ValueError(
                f"equivalence_bounds.{e.outcome.data}: give both a lower and an upper bound"
            )
        if e.outcome.data in bounds:
            raise ValueError(f"equivalence_bounds.{e.outcome.data}: bounds are given twice")
        bounds[e.outcome.data] = [e.low.data, e.high.data]
    plan = {
        "hypotheses": hypotheses,
        "primary_outcomes": list(form.primary_outcomes.data or []),
        "alpha": form.alpha.data,
        "correction": form.correction.data,
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
    plan = validate_plan(plan)
    named = (
        [h["outcome"] for h in plan["hypotheses"]]
        + plan["primary_outcomes"]
        + list(plan["equivalence_bounds"])
    )
    unmeasured = [o for o in named if o not in study_outcome_names]
    if unmeasured:
        known = ", ".join(study_outcome_names) or "none yet: add blocks first"
        raise ValueError(
            f"outcome {unmeasured[0]!r} is not measured by this study's blocks (measured: {known})"
        )
    return plan


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
            description=(
                f"The plan was frozen on {prereg.frozen_at:%Y-%m-%d %H:%M} UTC and cannot change."
            ),
        )
    if study.design_locked:
        abort(
            409,
            description="The study has opened: a plan written now would not be a preregistration.",
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
    if not form.validate_on_submit():
        return _page(study, role, form, 400)
    try:
        plan = plan_from_form(form, outcomes)
    except ValueError as err:
        return _page(study, role, form, 400, error=str(err))
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
    flash("Plan saved. It freezes when the study opens, or now with “Freeze plan”.", "success")
    return redirect(url_for("researcher.preregistration", study_id=study.id))


@bp.post("/studies/<int:study_id>/preregistration/freeze")
@requires_role("editor")
def preregistration_freeze(study: Study, role: str):
    """Freeze the saved plan now: from here on it is shown read-only with its hash."""
    study = lock_for_change(study)
    _require_editable(study)
    require_button()
    prereg = study.preregistration
    if prereg is None:
        abort(409, description="Save a plan before freezing it.")
    prereg.frozen_at = utcnow()
    audit.record(
        "preregistration.freeze", researcher=current_user, study=study, sha256=prereg.sha256
    )
    db.session.commit()
    flash("The plan is frozen.", "success")
    return redirect(url_for("researcher.preregistration", study_id=study.id))
