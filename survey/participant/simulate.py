"""Simulated participants who answer through the real pages, for demos, reports and load tests."""

from __future__ import annotations

import html
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import ScriptInfo

from survey.extensions import db
from survey.models import OPTIONS_SEPARATOR, Identity, Trial
from survey.participant.starting import SIMULATED_ENVIRON

CSRF = re.compile(r'name="csrf_token"[^>]*\svalue="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
TOKEN = re.compile(r'name="token" type="hidden" value="([^"]+)"')
RADIO = re.compile(r'<input type="radio" name="([^"]+)" value="([^"]+)"')
# A trial page: its progress, the form's action and CSRF token, in page order (one search).
TRIAL_FORM = re.compile(
    r'<progress id="progress" max="(\d+)".*?<form [^>]*?action="([^"]+)"[^>]*data-trial.*?'
    r'name="csrf_token" value="([^"]+)"',
    re.S,
)
TRIAL_ACTION = re.compile(r"/trial/(\d+)$")
TICKET = re.compile(r'<input type="hidden" name="ticket" value="([^"]+)"')
# A page between trials (survey/flow.py): the number of the page its button passes.
STEP = re.compile(r'<input type="hidden" name="step" value="(\d+)"')
CHECKBOX = re.compile(r'<input type="checkbox" name="([^"]+)" value="([^"]+)"')
TEXT_INPUT = re.compile(r'<input id="q-[^"]+" name="([^"]+)" type="text"')
# A question answered by the page's button alone (a study-phase "Continue"): its one value.
CONTINUE = re.compile(r'<input type="hidden" name="(seen)" value="([^"]+)"')

MOBILE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Simulated"
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) Simulated"
# Median response times in ms by task (log-normal around them).
RT_MEDIAN_MS = {
    "match": 1900,
    "rate": 1600,
    "detect": 1400,
    "choose": 1700,
    "learn": 2500,
    "recognise": 1800,
}


@dataclass
class TrialForm:
    """What a trial page asks: where to post, the CSRF token and each question's choices."""

    action: str
    csrf_token: str
    total: int
    choices: dict[str, list[str]] = field(default_factory=dict)
    # The answer ticket the page carries ("" when it has none).
    ticket: str = ""
    # Answers the page gives without a choice (a study-phase Continue: seen = 1).
    given: dict[str, str] = field(default_factory=dict)

    def answer(self, pick: Callable[[list[str]], str]) -> dict[str, str]:
        """Return the measures an answer stores: `pick` chooses one value per question, and the
        page's own answers (a study-phase Continue) are added. Name recall is asked only after
        "yes, I have met this person", so a "no" stores no name."""
        measures = {**self.given, **{name: pick(values) for name, values in self.choices.items()}}
        if measures.get("old") == "0":
            measures.pop("name", None)
        return measures

    @property
    def hidden(self) -> dict[str, str]:
        """Return the hidden fields a browser posts with the answer (rt_ms aside)."""
        fields = {"csrf_token": self.csrf_token, **self.given}
        if self.ticket:
            fields["ticket"] = self.ticket
        return fields


def parse_trial_form(page: str) -> TrialForm | None:
    """Read a trial page's form; None when the page is not a trial."""
    found = TRIAL_FORM.search(page)
    if found is None:
        return None
    total, action, csrf = found.groups()
    choices: dict[str, list[str]] = {}
    for name, value in RADIO.findall(page, found.end()):
        choices.setdefault(name, []).append(html.unescape(value) if "&" in value else value)
    ticket = TICKET.search(page, found.end())
    return TrialForm(
        html.unescape(action),
        csrf,
        int(total),
        choices,
        ticket.group(1) if ticket else "",
        dict(CONTINUE.findall(page, found.end())),
    )


def form_token(page: str) -> str | None:
    """Return the CSRF token of the first form on a page."""
    match = CSRF.search(page)
    return (match.group(1) or match.group(2)) if match else None


def agree(client: Any, slug: str, query: str = "") -> Any:
    """Open the study link and agree on its consent page; return the consent POST's response.

    A link that does not show the consent page (a resumed participant's redirect, a closed
    study's page) returns that response instead. `client` is a Flask test client or a Browser.
    """
    page = client.get(f"/s/{slug}{query}")
    if page.status_code != 200:
        return page
    text = page.get_data(as_text=True)
    token = TOKEN.search(text)
    data = {
        "csrf_token": form_token(text) or "",
        "token": token.group(1) if token else "",
        "agree": "1",
    }
    return client.post(f"/s/{slug}/consent{query}", data=data)


def is_step(response: Any) -> bool:
    """Tell whether a response sends the participant to a page between trials (a Flask test
    response, or anything with its `status_code` and `location`, as the bench's replies)."""
    return response.status_code in (302, 303) and (response.location or "").endswith("/step")


def step_form(page: str) -> dict[str, str]:
    """Return what passing a page between trials posts (block instructions, a break, a block's
    questions: skipped when optional, else answered with first choices, numbers 1)."""
    found = STEP.search(page)
    data = {"csrf_token": form_token(page) or "", "step": found.group(1) if found else ""}
    if 'id="skip"' in page:
        data["skip"] = "1"
        return data
    for name, value in [*RADIO.findall(page), *CHECKBOX.findall(page)]:
        data.setdefault(name, html.unescape(value))
    for name in TEXT_INPUT.findall(page):
        data.setdefault(name, "1")
    data["go" if 'name="go"' in page else "save"] = "1"
    return data


def pass_step(client: Any, slug: str) -> Any:
    """Pass the page between trials the participant stands at (`step_form`); return the POST's
    response (a 303 onward when passed)."""
    page = client.get(f"/s/{slug}/step")
    if page.status_code != 200:
        return page
    return client.post(f"/s/{slug}/step", data=step_form(page.get_data(as_text=True)))


def open_trial(client: Any, slug: str) -> Any:
    """GET the trial page, passing the pages between trials that come first; return the trial
    page (or where the participant is sent instead)."""
    page = client.get(f"/s/{slug}/trial")
    while is_step(page):
        passed = pass_step(client, slug)
        if passed.status_code != 303:
            return passed
        page = client.get(f"/s/{slug}/trial")
    return page


def _identity_effect(code: str) -> float:
    """Return a stable per-identity trustworthiness offset (some faces look more trustworthy)."""
    return random.Random(f"identity:{code}").gauss(0.0, 0.5)


@dataclass
class Person:
    """A simulated participant's traits."""

    rng: random.Random
    trust_bias: float
    ability: float
    criterion: float
    careless: bool
    # Share of the trials after which this participant gives up (None: finishes).
    stop_after: float | None
    mobile: bool

    @classmethod
    def draw(cls, rng: random.Random) -> Person:
        """Draw a participant: most careful, some careless, a few who stop early."""
        stop = rng.uniform(0.1, 0.9) if rng.random() < 0.08 else None
        return cls(
            rng=rng,
            trust_bias=rng.gauss(0.0, 0.8),
            ability=max(0.2, rng.gauss(1.6, 0.5)),
            criterion=rng.gauss(0.0, 0.3),
            careless=rng.random() < 0.08,
            stop_after=stop,
            mobile=rng.random() < 0.45,
        )

    def rt_ms(self, task: str) -> float:
        """Return a plausible response time for a task."""
        return round(RT_MEDIAN_MS.get(task, 1600) * math.exp(self.rng.gauss(0.0, 0.4)), 1)

    def answer(self, trial: dict[str, Any], choices: dict[str, list[str]]) -> dict[str, str]:
        """Return the form values for one trial."""
        rng = self.rng
        if "attention" in choices:
            options = choices["attention"]
            correct = trial["attention_answer"]
            right = (rng.random() < 0.5) if self.careless else (rng.random() < 0.98)
            wrong = [o for o in options if o != correct] or options
            return {"attention": correct if right and correct in options else rng.choice(wrong)}
        ai = trial["condition"] == "ai"
        out: dict[str, str] = {}
        certainty = 0.0
        for name, options in choices.items():
            if name == "same":
                d = self.ability - (0.5 if ai else 0.0)
                x = rng.gauss(d / 2 if trial["is_match"] else -d / 2, 1.0)
                out[name] = "1" if x > self.criterion else "0"
                certainty = abs(x - self.criterion)
            elif name == "source":
                says_ai = rng.random() < (0.56 if ai else 0.44)
                out[name] = "ai" if says_ai else "real"
                certainty = abs(rng.gauss(0.6, 0.5))
            elif name == "choice":
                real_side = "left" if trial["left_source"] == "real" else "right"
                ai_side = "right" if real_side == "left" else "left"
                out[name] = real_side if rng.random() < 0.6 else ai_side
            elif name == "old":
                # Memory: people met in a real photograph are recognised best, in an AI
                # headshot less well; a foil is taken for someone met now and then.
                d = 0.0 if not trial["studied"] else self.ability - (0.5 if ai else 0.0)
                x = rng.gauss(d, 1.0)
                out[name] = "1" if x > self.criterion + 0.5 else "0"
                certainty = abs(x - self.criterion - 0.5)
            elif name == "name":
                continue  # after a yes only: below
            elif name == "orienting":
                out[name] = str(min(5, max(1, round(rng.gauss(3.4, 1.0)))))
            elif name.startswith("scale_"):
                low, high = int(options[0]), int(options[-1])
                key = name[len("scale_") :]
                # AI headshots: trusted a bit less, judged a bit more polished.
                shift = (-0.35 if key == "trust" else 0.2) if ai else 0.0
                mid = (low + high) / 2 + 0.4
                latent = mid + self.trust_bias + _identity_effect(trial["identity"]) + shift
                out[name] = str(min(high, max(low, round(rng.gauss(latent, 1.0)))))
        if "confidence" in choices:
            level = 1 + round(certainty * 1.5 + rng.gauss(0.5, 0.7))
            out["confidence"] = str(min(5, max(1, level)))
        if "name" in choices and out.get("old") == "1":
            names = (trial["options"] or "").split(OPTIONS_SEPARATOR)
            right = str(names.index(trial["label"]) + 1) if trial["label"] in names else None
            knows = right is not None and rng.random() < 0.3 + 0.15 * self.ability
            out["name"] = right if knows and right else rng.choice(choices["name"])
        return out


def _trial_facts(trial_id: int) -> dict[str, Any]:
    """Return what a simulated participant 'perceives' of a trial (read from the database)."""
    row = db.session.execute(
        sa.select(
            Trial.task,
            Trial.condition,
            Trial.is_match,
            Trial.left_source,
            Trial.attention_answer,
            Identity.code,
            Trial.studied,
            Trial.label,
            Trial.options,
        )
        .join(Identity, Identity.id == Trial.identity_id)
        .where(Trial.id == trial_id)
    ).one()
    return {
        "task": row.task,
        "condition": row.condition,
        "is_match": row.is_match,
        "left_source": row.left_source,
        "attention_answer": row.attention_answer,
        "identity": row.code,
        "studied": row.studied,
        "label": row.label,
        "options": row.options,
    }


@dataclass
class Outcome:
    """What happened to one simulated participant."""

    completed: bool = False
    resumed: bool = False
    answered: int = 0
    stopped_early: bool = False
    refused: str = ""


class Browser:
    """A test client whose every request runs in an application context of its own.

    `flask` commands run inside an application context, which requests would otherwise share
    (and with it `g`, where the CSRF token is cached, and the database session).
    """

    def __init__(self, app: Flask, user_agent: str, address: str = "127.0.0.1") -> None:
        self.app = app
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = address
        # Marks the participants it starts as simulated: a key no HTTP request can set.
        self.client.environ_base[SIMULATED_ENVIRON] = True
        self.headers = {"User-Agent": user_agent}

    def get(self, url: str):
        """GET a page without following redirects."""
        with self.app.app_context():
            return self.client.get(url, headers=self.headers)

    def post(self, url: str, data: dict[str, str]):
        """POST a form without following redirects."""
        with self.app.app_context():
            return self.client.post(url, data=data, headers=self.headers)


def run_participant(app: Flask, slug: str, index: int, rng: random.Random) -> Outcome:
    """Take one simulated participant from the study link to the debrief (or an early stop)."""
    outcome = Outcome()
    person = Person.draw(rng)
    # Each simulated person comes from an address of their own, as people do (the start limits
    # count per address); 198.18.0.0/15 is reserved for benchmarks.
    address = f"198.18.{index // 256 % 256}.{index % 256}"
    client = Browser(app, MOBILE_UA if person.mobile else DESKTOP_UA, address)
    bits = rng.getrandbits(64)
    # Prolific's link: the participant's id and this attempt's session (a rerun with the same
    # seed is the same person coming back to the same attempt, so it resumes).
    query = (
        f"?PROLIFIC_PID=SIM{bits:016x}&STUDY_ID=simulated&SESSION_ID=S{bits:016x}"
        if rng.random() < 0.7
        else ""
    )
    response = agree(client, slug, query)
    if response.status_code == 302:
        # This recruitment id started before (a repeated seed): it resumes where it stopped.
        outcome.resumed = True
    elif response.status_code != 303:
        outcome.refused = f"{response.status_code}"
        return outcome
    page = open_trial(client, slug)
    while page.status_code == 200:
        form = parse_trial_form(page.get_data(as_text=True))
        if form is None:
            break
        if person.stop_after is not None and outcome.answered >= person.stop_after * form.total:
            outcome.stopped_early = True
            return outcome
        trial_id = int(TRIAL_ACTION.search(form.action).group(1))
        with app.app_context():
            facts = _trial_facts(trial_id)
        data = person.answer(facts, form.choices)
        data.update(form.hidden, rt_ms=str(person.rt_ms(facts["task"])))
        response = client.post(form.action, data=data)
        if response.status_code != 303:
            raise click.ClickException(
                f"participant {index}: answer to trial {trial_id} got {response.status_code}"
            )
        outcome.answered += 1
        page = open_trial(client, slug)
    if page.status_code in (302, 303) and page.headers["Location"].endswith("/questions"):
        text = client.get(page.headers["Location"]).get_data(as_text=True)
        data = {"csrf_token": form_token(text) or ""}
        if rng.random() < 0.8:
            data.update(
                age=str(rng.randrange(18, 71)),
                gender=rng.choice(["woman", "man", "non_binary", ""]),
                save="1",
            )
        else:
            data["skip"] = "1"
        client.post(f"/s/{slug}/questions", data=data)
    done = client.get(f"/s/{slug}/done")
    outcome.completed = done.status_code == 200
    return outcome


def simulate(app: Flask, slug: str, n: int, seed: int | None = None) -> list[Outcome]:
    """Run `n` simulated participants one after another; return what happened to each."""
    rng = random.Random(seed)
    return [run_participant(app, slug, i, random.Random(rng.getrandbits(64))) for i in range(n)]


@click.command("simulate-participants")
@click.option("--study", "slug", required=True, help="Slug of an open study, e.g. demo.")
@click.option("-n", "count", default=30, show_default=True, type=click.IntRange(1, 10000))
@click.option("--seed", type=int, default=None, help="Make the simulated answers repeatable.")
@click.pass_context
def simulate_participants_command(
    ctx: click.Context, slug: str, count: int, seed: int | None
) -> None:
    """Fill an open study with simulated participants answering through the real pages."""
    from survey.participant.service import study_by_slug

    # No application context around the run: each simulated request must get its own, as a
    # browser's would (its own `g`, CSRF token and database session).
    app = ctx.ensure_object(ScriptInfo).load_app()
    with app.app_context():
        study = study_by_slug(slug)
        if study is None:
            raise click.BadParameter(f"no study has the slug {slug!r}", param_hint="--study")
        if not study.is_open:
            raise click.BadParameter(
                f"study {slug!r} is {study.state}; open it first", param_hint="--study"
            )
    outcomes = simulate(app, slug, count, seed)
    refused = [o.refused for o in outcomes if o.refused]
    click.echo(
        f"Simulated {count} participants in '{slug}': "
        f"{sum(o.completed for o in outcomes)} completed, "
        f"{sum(o.stopped_early for o in outcomes)} stopped early, "
        f"{sum(o.resumed for o in outcomes)} resumed an earlier run, "
        f"{sum(o.answered for o in outcomes)} trials answered"
        + (
            f", {len(refused)} turned away (HTTP {', '.join(sorted(set(refused)))})"
            if refused
            else ""
        )
        + "."
    )
