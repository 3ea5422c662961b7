"""Property: every valid study design gives a report, downloads and a public page that render.

Hypothesis draws a design the way a researcher writes one in the workspace: blocks of every
task (one or several of each) with every block setting in every syntax the forms document
("2 checks", "1 check", positions "3, 12", practice yes/no/auto, caps on the identities shown,
side-by-side or sequential matching with an exposure time, confidence on or off, one or more
rating scales of any range, a choose question), an odd or even number of identities and of
lists, and a preregistration plan with any of its fields (or none). The design is built
through the researcher routes (the block and plan forms, the study's state form), simulated
participants answer through the participant service (some failing attention checks, some
stopping early), the study is closed, and then the report page, every download, each figure,
the methods paragraph, publishing and the public page, its embed, findings.json and charts
must all answer 200 (or, for a report without an included participant, a refusal in words).

The examples are derandomized (the same every run, no example database) and bounded so the
test takes about a minute; most analyse without the mixed models, a few with them.
"""

from __future__ import annotations

import functools
import io
import json
import re
import zipfile

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from analysis.report import analyse
from survey.block_settings import attention_check_count
from survey.extensions import db
from survey.findings import service
from survey.models import Block, Identity, Report, Study
from tests.findings.support import (
    Effects,
    owner_id,
    page_text,
    publish_findings,
    set_state,
    simulate,
)

# sign_in, not the `auth` fixture: Hypothesis derives its derandomized examples from the test's
# source and signature, so a changed signature would try other designs than before.
from tests.helpers import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.once]

CONDITION_TASKS = ("match", "rate", "detect")
FAST = functools.partial(analyse, mixed_models=False)
# Text a researcher may type in a question, anchor or hypothesis: any printable character,
# HTML's own among them.
TEXT = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=40
).filter(lambda t: t.strip())
SCALE_KEYS = st.one_of(
    st.sampled_from(["trust", "professional", "warmth", "likeable"]),
    st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True),
)
RESERVED = {"same", "confidence", "choice", "source", "attention"}


def _least(task: str) -> int:
    """How many identities a block of this task shows at least (2 per condition)."""
    return 4 if task in CONDITION_TASKS else 2


@st.composite
def attention_text(draw, n_trials: int) -> str:
    """The attention-check field as typed: empty, a count ("2 checks") or positions."""
    kind = draw(st.sampled_from(["none", "count", "positions"]))
    if kind == "none":
        return draw(st.sampled_from(["", " "]))
    if kind == "count":
        k = draw(st.integers(0, min(n_trials, 3)))
        word = draw(st.sampled_from(["checks", "check", "Checks", " checks"]))
        return f"{k}{word}" if word.startswith(" ") else f"{k} {word}"
    k = draw(st.integers(1, 3))
    positions = draw(st.lists(st.integers(1, n_trials + k), min_size=k, max_size=k, unique=True))
    return draw(st.sampled_from([", ", ",", "; "])).join(str(p) for p in positions)


@st.composite
def scale_rows(draw) -> list[dict]:
    """One to three rating scales of any range, with or without anchors."""
    keys = draw(
        st.lists(
            SCALE_KEYS.filter(lambda k: k not in RESERVED), min_size=1, max_size=3, unique=True
        )
    )
    rows = []
    for key in keys:
        low = draw(st.sampled_from([1, 0, -3, 1, 10]))
        high = low + draw(st.sampled_from([1, 4, 6, 10, 100]))
        row = {"key": key, "question": draw(TEXT), "min": str(low), "max": str(high)}
        if draw(st.booleans()):
            row.update(low_anchor=draw(TEXT), high_anchor=draw(TEXT))
        rows.append(row)
    return rows


@st.composite
def block_forms(draw, task: str, index: int, n_ids: int) -> dict:
    """A block's settings form as a researcher fills it in."""
    # A cap the workspace accepts: at most the study's identities, even where half are shown
    # real and half AI (a cap that does not fit is refused when saved).
    cap = draw(st.one_of(st.none(), st.integers(_least(task), n_ids)))
    if cap is not None and task in CONDITION_TASKS and cap % 2:
        cap -= 1
    n_trials = n_ids if cap is None else min(cap, n_ids)
    form = {
        "name": draw(st.sampled_from(["block", "Block", "b_", "task-"])) + f"{index + 1}",
        "practice": draw(st.sampled_from(["auto", "yes", "no"])),
        "attention_checks": draw(attention_text(n_trials)),
        "n_identities": "" if cap is None else str(cap),
    }
    if task in ("match", "detect") and draw(st.booleans()):
        form["confidence"] = "y"
    if task == "match":
        form["presentation"] = draw(st.sampled_from(["side_by_side", "sequential"]))
        form["exposure_ms"] = draw(st.sampled_from(["", "200", "1500", "733", "10000"]))
    if task == "choose":
        form["question"] = draw(TEXT)
    if task == "rate":
        for i, row in enumerate(draw(scale_rows())):
            form.update({f"scales-{i}-{k}": v for k, v in row.items()})
    return form


def outcomes_of(blocks: list[tuple[str, dict]]) -> list[str]:
    """The outcomes the blocks measure (as the workspace offers them to the plan)."""
    names: list[str] = []
    fixed = {
        "match": ["recognition_accuracy", "d_prime", "criterion"],
        "choose": ["choice_real"],
        "detect": ["detection_accuracy", "detection_d_prime"],
    }
    for task, form in blocks:
        keys = [v for k, v in form.items() if k.startswith("scales-") and k.endswith("-key")]
        names += [n for n in (keys if task == "rate" else fixed[task]) if n not in names]
    return names


@st.composite
def plan_forms(draw, outcomes: list[str]) -> dict | None:
    """The preregistration form, or None for no plan; every field may be left at its default."""
    if draw(st.booleans()):
        return None
    form: dict = {
        "alpha": str(draw(st.sampled_from([0.05, 0.01, 0.1, 0.2, 0.001]))),
        "correction": draw(st.sampled_from(["holm", "bh"])),
    }
    named = draw(st.lists(st.sampled_from(outcomes), unique=True, max_size=len(outcomes)))
    for i, outcome in enumerate(named):
        form[f"hypotheses-{i}-outcome"] = outcome
        form[f"hypotheses-{i}-direction"] = draw(st.sampled_from(["two-sided", "less", "greater"]))
        form[f"hypotheses-{i}-text"] = draw(st.one_of(st.just(""), TEXT))
    # The blank row a browser posts under the filled ones (its select sends its first option).
    form.update(
        {f"hypotheses-{len(named)}-outcome": "", f"hypotheses-{len(named)}-direction": "two-sided"}
    )
    form["primary_outcomes"] = draw(
        st.lists(st.sampled_from(outcomes), unique=True, max_size=len(outcomes))
    )
    for flag in ("exclude_incomplete", "exclude_attention", "exclude_straightlining"):
        if draw(st.booleans()):
            form[flag] = "y"
    form["min_median_rt_ms"] = draw(st.sampled_from(["", "0", "250", "300.5"]))
    bounded = draw(st.lists(st.sampled_from(outcomes), unique=True, max_size=2))
    for i, outcome in enumerate(bounded):
        low = draw(st.sampled_from([-0.5, -0.1, -2.0, -10.0]))
        form.update(
            {
                f"bounds-{i}-outcome": outcome,
                f"bounds-{i}-low": str(low),
                f"bounds-{i}-high": str(draw(st.sampled_from([0.5, 0.1, 3.0]))),
            }
        )
    form[f"bounds-{len(bounded)}-outcome"] = ""
    form["target_n"] = draw(st.sampled_from(["", "1", "40"]))
    form["freeze_now"] = draw(st.booleans())
    return form


def _one_range_per_scale(blocks: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The blocks with a scale rated in several blocks given its first block's range (the
    workspace refuses to open a study whose blocks rate one scale on different ranges)."""
    ranges: dict[str, tuple[str, str]] = {}
    for _task, form in blocks:
        rows = [k[: -len("-key")] for k in form if k.startswith("scales-") and k.endswith("-key")]
        for row in rows:
            low, high = ranges.setdefault(
                form[f"{row}-key"], (form[f"{row}-min"], form[f"{row}-max"])
            )
            form.update({f"{row}-min": low, f"{row}-max": high})
    return blocks


@st.composite
def designs(draw) -> dict:
    """A valid study design with its plan, participants and how they answer."""
    tasks = draw(
        st.lists(st.sampled_from(["match", "rate", "choose", "detect"]), min_size=1, max_size=4)
    )
    with_conditions = any(t in CONDITION_TASKS for t in tasks)
    n_ids = draw(st.integers(4 if with_conditions else 2, 8))
    blocks = _one_range_per_scale(
        [(task, draw(block_forms(task, i, n_ids))) for i, task in enumerate(tasks)]
    )
    lists = [2, 4, 6] if with_conditions else [1, 2, 3, 5]
    return {
        "n_identities": n_ids,
        "n_lists": draw(st.sampled_from(lists)),
        "assign_by": draw(st.sampled_from(["started", "completed"])),
        "blocks": blocks,
        "plan": draw(plan_forms(outcomes_of(blocks))),
        "participants": draw(st.integers(1, 14)),
        # Ordinary answers, or degenerate ones: no spread, everyone right, one side chosen.
        "effects": Effects(
            rating_drop=draw(st.sampled_from([0.8, 0.0, -0.5])),
            rating_sd=draw(st.sampled_from([0.7, 0.7, 0.0])),
            match_real=draw(st.sampled_from([0.85, 1.0, 0.5])),
            match_ai=draw(st.sampled_from([0.7, 1.0, 0.0])),
            detect=draw(st.sampled_from([0.65, 1.0, 0.0])),
            choose_real=draw(st.sampled_from([0.7, 1.0, 0.0])),
            fail_attention=draw(st.sampled_from([0.0, 0.0, 0.3, 1.0])),
            stop_early=draw(st.sampled_from([0.0, 0.0, 0.3])),
        ),
        "prolific": draw(st.booleans()),
        "mixed_models": False,
    }


def _location_id(response) -> int:
    """The study id a redirect to a study page points at."""
    return int(re.search(r"/studies/(\d+)", response.headers["Location"])[1])


def build_study(app, client, demo: int, design: dict) -> int:
    """Make the design through the workspace's own forms; return the new study's id."""
    response = client.post(f"/r/studies/{demo}/duplicate")
    assert response.status_code == 302, response.status_code
    study_id = _location_id(response)
    with app.app_context():
        study = db.session.get(Study, study_id)
        form = {
            f: getattr(study, f) or ""
            for f in (
                "title",
                "slug",
                "description",
                "consent_text",
                "instructions_text",
                "debrief_text",
                "completion_code",
                "completion_url",
            )
        }
        identities = db.session.scalars(
            sa.select(Identity.id).where(Identity.study_id == study_id).order_by(Identity.code)
        ).all()
        blocks = db.session.scalars(sa.select(Block.id).where(Block.study_id == study_id)).all()
        prereg = study.preregistration
        if prereg is not None:
            db.session.delete(prereg)
            db.session.commit()
    for identity in identities[design["n_identities"] :]:
        response = client.post(f"/r/studies/{study_id}/stimuli/identities/{identity}/delete")
        assert response.status_code == 302
    for block in blocks:
        assert client.post(f"/r/studies/{study_id}/blocks/{block}/delete").status_code == 302
    # The lists after the old blocks are gone: an odd count is refused while a match, rate or
    # detect block is there, and allowed for choose-only designs.
    form.update(n_lists=str(design["n_lists"]), assign_by=design["assign_by"], target_n="")
    assert client.post(f"/r/studies/{study_id}/edit", data=form).status_code == 302
    for task, fields in design["blocks"]:
        response = client.post(
            f"/r/studies/{study_id}/blocks", data={"name": fields["name"], "task": task}
        )
        assert response.status_code == 302, page_text(response)
        block_id = int(re.search(r"/blocks/(\d+)", response.headers["Location"])[1])
        response = client.post(f"/r/studies/{study_id}/blocks/{block_id}", data=fields)
        assert response.status_code == 302, (fields, page_text(response)[:2000])
    plan = design["plan"]
    if plan is not None:
        freeze = plan.pop("freeze_now")
        response = client.post(f"/r/studies/{study_id}/preregistration", data=plan)
        assert response.status_code == 302, (plan, page_text(response)[:2000])
        plan["freeze_now"] = freeze
        if freeze:
            assert client.post(f"/r/studies/{study_id}/preregistration/freeze").status_code == 302
    response = client.post(f"/r/studies/{study_id}/state", data={"state": "open"})
    assert response.status_code == 302, page_text(response)[:2000]
    return study_id


def check_report_and_public_page(app, client, study_id: int) -> None:
    """Every view of the closed study's report answers, and publishing works or says why not."""
    page = client.get(f"/r/studies/{study_id}/report")
    assert page.status_code == 200
    text = page_text(page)
    assert "This section could not be shown" not in text
    with app.app_context():
        report = db.session.scalar(sa.select(Report).where(Report.study_id == study_id))
        if report.status == "failed" and "no data left to analyse" in report.error:
            # Everybody excluded: the report says so in words, and nothing can be published.
            assert "no data left to analyse" in text
            response = publish_findings(client, study_id)
            assert response.status_code == 302
            assert client.get(f"/f/{db.session.get(Study, study_id).slug}").status_code == 404
            return
        assert report.status == "done", report.error
        study = db.session.get(Study, study_id)
        methods = service.methods_text(study, report)
        results = service.results_json(report)
        blocks = [(b.name, b.task, b.settings) for b in study.blocks]
        slug = study.slug
    # The page's text has its spaces collapsed (a question may hold a no-break space).
    assert re.sub(r"\s+", " ", methods).strip() in text
    for name, task, stored in blocks:
        told = methods[methods.index(f"({name})") :].split("; (")[0]
        checks = attention_check_count(stored["attention_checks"])
        if checks:
            assert f"with {checks} attention check" in told
        if task == "match" and stored["presentation"] == "sequential":
            assert f"the headshot alone for {stored['exposure_ms']} ms" in told
    base = f"/r/studies/{study_id}/report/{report.id}"
    standalone = client.get(f"{base}/report.html")
    assert standalone.status_code == 200
    assert "This section could not be shown" not in page_text(standalone)
    assert json.loads(client.get(f"{base}/results.json").data)["data_sha256"]
    for name in ("tables.zip", "reproduction.zip"):
        response = client.get(f"{base}/{name}")
        assert response.status_code == 200, name
        assert zipfile.ZipFile(io.BytesIO(response.data)).testzip() is None
    figures = sorted(
        set(
            re.findall(
                r'src="(/r/studies/[^"]+/figures/[a-z0-9_]+\.svg)"', page.get_data(as_text=True)
            )
        )
    )
    for url in figures:
        assert client.get(url).status_code == 200, url
    if figures:
        assert client.get(figures[0][:-3] + "png").status_code == 200

    # The team's preview of the public page and the confirmation page render before publishing.
    preview = client.get(f"/r/studies/{study_id}/findings/preview")
    assert preview.status_code == 200
    assert "This section could not be shown" not in page_text(preview)
    assert client.get(f"/r/studies/{study_id}/report/publish").status_code == 200
    response = publish_findings(client, study_id)
    assert response.status_code == 302
    if results["n_participants"] < service.MIN_PUBLIC_N:
        assert "Findings are published only from at least" in page_text(
            client.get(f"/r/studies/{study_id}/report")
        )
        assert client.get(f"/f/{slug}").status_code == 404
        return
    public = client.get(f"/f/{slug}")
    assert public.status_code == 200
    assert "This section could not be shown" not in page_text(public)
    assert client.get(f"/f/{slug}/embed").status_code == 200
    assert json.loads(client.get(f"/f/{slug}/findings.json").data)["findings"] is not None
    for finding in results["findings"]:
        for fmt in ("svg", "png"):
            url = f"/f/{slug}/charts/{finding['outcome']}.{fmt}"
            assert client.get(url).status_code == 200, url


EXAMPLE_MIXED = {
    "n_identities": 5,
    "n_lists": 2,
    "assign_by": "started",
    "blocks": [
        (
            "match",
            {
                "name": "seq",
                "practice": "yes",
                "attention_checks": "2 checks",
                "n_identities": "",
                "presentation": "sequential",
                "exposure_ms": "733",
                "confidence": "y",
            },
        ),
        (
            "rate",
            {
                "name": "rate 1",
                "practice": "auto",
                "attention_checks": "1, 4",
                "n_identities": "4",
                "scales-0-key": "trust",
                "scales-0-question": "Trust?",
                "scales-0-min": "0",
                "scales-0-max": "100",
            },
        ),
        (
            "detect",
            {"name": "det", "practice": "no", "attention_checks": "1 check", "n_identities": ""},
        ),
    ],
    "plan": {
        "alpha": "0.05",
        "correction": "bh",
        "hypotheses-0-outcome": "trust",
        "hypotheses-0-direction": "less",
        "hypotheses-0-text": "<b>less</b> & trusted",
        "hypotheses-1-outcome": "",
        "hypotheses-1-direction": "two-sided",
        "primary_outcomes": ["trust", "recognition_accuracy"],
        "exclude_attention": "y",
        "min_median_rt_ms": "",
        "bounds-0-outcome": "recognition_accuracy",
        "bounds-0-low": "-0.1",
        "bounds-0-high": "0.1",
        "target_n": "40",
        "freeze_now": False,
    },
    "participants": 12,
    "effects": Effects(fail_attention=0.2, stop_early=0.2),
    "prolific": True,
    "mixed_models": True,
}
EXAMPLE_CHOOSE_ONLY = {
    "n_identities": 3,
    "n_lists": 3,
    "assign_by": "completed",
    "blocks": [
        (
            "choose",
            {
                "name": "pick",
                "practice": "auto",
                "attention_checks": "2 checks",
                "n_identities": "",
                "question": "Which one? “quoted” <i>",
            },
        ),
        (
            "choose",
            {
                "name": "pick 2",
                "practice": "yes",
                "attention_checks": "",
                "n_identities": "2",
                "question": "Again?",
            },
        ),
    ],
    "plan": None,
    "participants": 9,
    "effects": Effects(),
    "prolific": False,
    "mixed_models": True,
}


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: the failing example is printed as drawn (shrinking one takes minutes).
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@example(design=EXAMPLE_MIXED)
@example(design=EXAMPLE_CHOOSE_ONLY)
@given(design=designs())
def test_every_valid_design_reports_downloads_and_publishes(app, client, demo, monkeypatch, design):
    """Any valid design, plan and sample: report, downloads, methods and public page render."""
    # Publishing needs 20 included participants; the pages must render with any number.
    monkeypatch.setattr(service, "MIN_PUBLIC_N", 1)
    monkeypatch.setattr(service, "analyse", analyse if design["mixed_models"] else FAST)
    sign_in(client, app, owner_id(app))
    study_id = build_study(app, client, demo, design)
    with app.app_context():
        simulate(
            study_id,
            design["participants"],
            seed=design["participants"],
            effects=design["effects"],
            prolific=design["prolific"],
        )
    set_state(app, study_id, "closed")
    check_report_and_public_page(app, client, study_id)
