"""Plan the sample size before preregistering: the participants a target power needs, and
the power curve (a GET form: nothing is stored)."""

from __future__ import annotations

import math
from typing import Any

from flask import render_template, request
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, IntegerField, RadioField, SelectField
from wtforms.validators import InputRequired, NumberRange, Optional

from survey.i18n import gettext
from survey.i18n import lazy_gettext as _l
from survey.models import Study
from survey.researcher import bp, planning
from survey.researcher.access import requires_role
from survey.researcher.forms import options


class SampleSizeForm(FlaskForm):
    """What the researcher expects, for the sample-size calculation (GET, no token)."""

    class Meta:
        csrf = False

    source = RadioField(
        _l("Start from"),
        choices=options(
            [
                ("difference", _l("A difference and its standard deviation")),
                ("dz", _l("A standardised effect size (d_z)")),
                ("pilot", _l("This study's data so far (a pilot)")),
            ]
        ),
        default="difference",
    )
    effect = FloatField(
        _l("Difference to detect (AI minus real)"),
        validators=[Optional()],
        description=_l(
            "On the rating scale, e.g. −0.3 points of trust: the smallest difference "
            "that would matter. With a pilot, leave empty to use the pilot's difference."
        ),
    )
    sd = FloatField(
        _l("Standard deviation of the participants' differences"),
        validators=[Optional()],
        description=_l(
            "How much a participant's own AI-minus-real difference varies from person "
            "to person, e.g. 0.9. With a pilot, leave empty to use the pilot's."
        ),
    )
    dz = FloatField(
        _l("Effect size d_z"),
        validators=[Optional()],
        description=_l(
            "The difference divided by that standard deviation, e.g. 0.3 (small to medium)."
        ),
    )
    measure = SelectField(_l("Pilot rating scale"), choices=[], validate_choice=False)
    alpha = FloatField(
        _l("Alpha"),
        default=0.05,
        validators=[InputRequired(_l("Give alpha, e.g. 0.05."))],
        description=_l("The two-sided significance level, between 0 and 0.5."),
    )
    target_power = FloatField(
        _l("Target power"),
        default=0.8,
        validators=[InputRequired(_l("Give the power to reach, e.g. 0.8 or 0.9."))],
        description=_l("The chance of a significant result if the difference is real, e.g. 0.8."),
    )
    simulate = BooleanField(_l("Also simulate the mixed model (LMM) — slower, approximate"))
    identities = IntegerField(
        _l("Identities each participant sees"),
        default=24,
        validators=[
            Optional(),
            # NumberRange fills in its bounds.
            NumberRange(
                min=2,
                max=planning.WEB_MAX_IDENTITIES,
                message=_l("Give a whole number from %(min)s to %(max)s."),
            ),
        ],
        description=_l("For the mixed-model simulation."),
    )


def _check_numbers(form: SampleSizeForm) -> None:
    """Put range errors beside the fields (alpha, power, and the effect the source needs)."""
    alpha, target = form.alpha.data, form.target_power.data
    if alpha is not None and not 0 < alpha <= 0.5:
        form.alpha.errors.append(gettext("Alpha must be above 0 and at most 0.5, e.g. 0.05."))
    if target is not None and not 0 < target < 1:
        form.target_power.errors.append(gettext("Power must be between 0 and 1, e.g. 0.8."))
    elif target is not None and alpha is not None and 0 < alpha <= 0.5 and target <= alpha:
        form.target_power.errors.append(gettext("Power must be above alpha."))
    source = form.source.data
    # The form takes "inf" and "nan" as numbers; the calculation needs finite ones.
    for field in (form.effect, form.sd, form.dz):
        if field.data is not None and not math.isfinite(field.data):
            field.errors.append(
                gettext("Give a finite number, not %(typed)s.", typed=repr(field.raw_data[0]))
            )
    effect, sd = form.effect.data, form.sd.data
    if (
        source == "difference"
        and not (form.effect.errors or form.sd.errors)
        and effect is not None
        and sd is not None
        and sd > 0
        and not math.isfinite(effect / sd)
    ):
        form.effect.errors.append(
            gettext(
                "The difference is too large for its standard deviation: d_z would be infinite."
            )
        )
    if source == "difference":
        if form.effect.data is None:
            form.effect.errors.append(gettext("Give the difference to detect, e.g. -0.3."))
        if form.sd.data is None:
            form.sd.errors.append(
                gettext("Give the standard deviation of the differences, e.g. 0.9.")
            )
    if source == "dz":
        if form.dz.data is None:
            form.dz.errors.append(gettext("Give the effect size d_z, e.g. 0.3."))
        elif form.dz.data == 0:
            form.dz.errors.append(gettext("The effect size must not be 0."))
        if form.simulate.data:
            form.simulate.errors.append(
                gettext(
                    "The simulation needs a difference on the rating scale: start from a "
                    "difference and its SD, or from the pilot."
                )
            )
    if source in ("difference", "pilot"):
        if form.effect.data == 0:
            form.effect.errors.append(
                gettext("The difference must not be 0: nothing finds no difference.")
            )
        if form.sd.data is not None and not form.sd.data > 0:
            form.sd.errors.append(gettext("The standard deviation must be above 0."))


def _calculate(form: SampleSizeForm, trials) -> dict[str, Any] | None:
    """Run the calculation of a valid form; None (with errors on the fields) when it cannot."""
    from analysis.power import (
        DEFAULT_COMPONENTS,
        analytic_curve,
        components_for_sd,
        components_from_pilot,
        sample_size_paired_t,
    )

    pilot = None
    if form.source.data == "pilot":
        try:
            pilot = planning.pilot_of(trials, form.measure.data or "")
        except ValueError as err:
            form.measure.errors.append(
                gettext("The pilot cannot be used: %(problem)s.", problem=err)
            )
            return None
    if form.source.data == "dz":
        effect, sd = form.dz.data, 1.0
    else:
        effect = form.effect.data if form.effect.data is not None else pilot.mean_difference
        sd = form.sd.data if form.sd.data is not None else pilot.sd_difference
    try:
        found = sample_size_paired_t(
            effect, sd, power=form.target_power.data, alpha=form.alpha.data
        )
    except ValueError as err:
        field = form.dz if form.source.data == "dz" else form.effect
        field.errors.append(f"{str(err)[0].upper()}{str(err)[1:]}.")
        return None
    analytic = analytic_curve(effect, sd, planning.curve_numbers(found.n_required), found.alpha)
    simulated = None
    components = None
    notes: list[str] = []
    if form.simulate.data:
        n_identities = form.identities.data or (pilot.n_identities if pilot else 24)
        if pilot is not None:
            try:
                components = components_from_pilot(pilot.rows)
            except ValueError as err:
                form.simulate.errors.append(
                    gettext(
                        "The pilot's mixed model could not be fitted: %(problem)s.", problem=err
                    )
                )
                return None
        else:
            try:
                components = components_for_sd(sd, n_identities, DEFAULT_COMPONENTS)
            except ValueError as err:
                # In the form's words: the analysis names the argument sd_difference.
                said = str(err).replace("sd_difference", "the standard deviation")
                form.sd.errors.append(gettext("For the simulation, %(problem)s.", problem=said))
                return None
        simulated = planning.simulate_lmm(
            effect, components, found.n_required, n_identities, found.target_power, found.alpha
        )
        grid = planning.simulation_grid(found.n_required, n_identities)
        notes = planning.simulation_notes(simulated, grid)
    return {
        "found": found,
        "note": planning.answer_note(found),
        "pilot": pilot,
        "analytic": analytic,
        "simulated": simulated,
        "components": components,
        "notes": notes,
        "chart": planning.chart(
            analytic, found, simulated.curve if simulated is not None else None
        ),
    }


@bp.get("/studies/<int:study_id>/preregistration/sample-size")
@requires_role("viewer")
def sample_size(study: Study, role: str):
    """The sample-size form and, once filled, the required n and the power curve."""
    try:
        trials = planning.study_trials(study)
    except ValueError as err:  # data the analysis refuses: plan without a pilot
        trials = None
        pilot_problem = gettext(
            "This study's data cannot serve as a pilot: %(problem)s", problem=err
        )
    else:
        pilot_problem = ""
    measures = planning.rating_measures(trials) if trials is not None and not trials.empty else []
    form = SampleSizeForm(request.args)
    if not measures:
        form.source.choices = [c for c in form.source.choices if c.value != "pilot"]
    form.measure.choices = options((m, m) for m in measures)
    prereg = study.preregistration
    if not request.args:
        if prereg is not None:
            form.alpha.data = prereg.plan.get("alpha", 0.05)
        if measures:
            form.source.data = "pilot"
    result, status = None, 200
    if request.args:
        valid = form.validate()
        _check_numbers(form)
        if valid and not any(f.errors for f in form):
            result = _calculate(form, trials)
        if result is None:
            status = 400
    return (
        render_template(
            "researcher/sample_size.html",
            study=study,
            role=role,
            form=form,
            result=result,
            measures=measures,
            form_has_errors=any(f.errors for f in form),
            pilot_problem=pilot_problem,
            limits={
                "sims": planning.WEB_SIMS,
                "points": planning.WEB_POINTS,
                "seconds": planning.WEB_SECONDS,
                "trials": planning.WEB_MAX_TRIALS,
            },
        ),
        status,
    )
