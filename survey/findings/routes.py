"""Report and findings routes: the research team's report, its downloads, and the public page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import sqlalchemy as sa
from flask import (
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from markupsafe import escape

from analysis.results import FORMATS, card_alt
from survey.design import presentation_order
from survey.errors import render_error
from survey.extensions import db
from survey.findings import bp, present, service, studio
from survey.findings.forms import ActionForm, PublishForm
from survey.findings.sections import SectionError, guard
from survey.i18n import gettext
from survey.models import Report, Study, utcnow
from survey.researcher.access import lock_for_change, requires_role

# Bump when figures are drawn differently: stored charts of another version are redrawn, and
# browsers' copies are not reused (the version is part of the stored chart's inputs, so of its
# ETag, the SHA-256 of its bytes).
# 2: within-participant (Cousineau-Morey) intervals; 3: labels beside the bars, identity CIs;
# 4: chart cards and the public means table with within-participant intervals
FIGURES_VERSION = "4"
EMBED_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors *"
)
SAFE_NAME = re.compile(r"[a-z0-9_]{1,64}")
CSS_FILES = ("css/likeness.css", "css/report.css")


def _chunks(handle, size: int = 256 * 1024):
    """Yield a file's bytes in chunks and close it at the end (or when the client goes)."""
    try:
        while chunk := handle.read(size):
            yield chunk
    finally:
        handle.close()


def _download(data, filename: str, mimetype: str) -> Response:
    """A download (Content-Disposition: attachment) of bytes or an open file, never cached."""
    body = data if isinstance(data, bytes) else _chunks(data)
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _chart_response(
    report_id: int,
    name: str,
    fmt: str,
    inputs: str,
    draw,
    public: bool,
    filename: str | None = None,
) -> Response:
    """A drawn chart from the store (drawn and stored on first use), 304 when the client has it.

    The ETag is the SHA-256 of the stored bytes, so a 304 is only ever answered for these very
    bytes; the store is keyed by report, so one report's chart is never another's.
    """
    sha = service.stored_chart_sha(report_id, name, fmt, inputs)
    if sha is not None and request.if_none_match.contains(sha[:32]):
        response = Response(status=304)
    else:
        found = service.cached_chart(report_id, name, fmt, inputs, draw)
        if found is None:
            abort(404)
        sha, body = found
        response = Response(body, mimetype=FORMATS[fmt])
        if filename:
            response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.set_etag(sha[:32])
    # Revalidated on every use (a cheap 304): unpublishing takes public copies down, and a
    # report recomputed or deleted (SQLite may then reuse its id) is never shown from a cache.
    response.headers["Cache-Control"] = "public, no-cache" if public else "private, no-cache"
    return response


# --- the report --------------------------------------------------------------------------------


def _figure_specs(report: Report):
    """The report's figures (drawn lazily from the stored results and score tables)."""
    from analysis.figures import report_figures

    participants, identities = service.score_tables(report)
    return report_figures(service.results_json(report), participants, identities)


def _figure_inputs() -> str:
    """What a report figure is drawn from besides the report: the figure code's version."""
    return service.chart_inputs("figure", FIGURES_VERSION)


def _stored_figure(report: Report, spec, fmt: str) -> bytes:
    """A report figure from the store, drawn and stored on first use."""
    found = service.cached_chart(
        report.id, service.figure_name(spec.name), fmt, _figure_inputs(), lambda: _drawn(spec, fmt)
    )
    return found[1]


def _drawn(spec, fmt: str) -> bytes:
    """A figure drawn and rendered as SVG or PNG bytes."""
    from analysis.figures import render

    return render(spec.draw(), fmt)


def _figure_sources(study: Study, report: Report, specs, standalone: bool) -> dict:
    """Where each figure's image comes from: its URL, or (standalone) the SVG inside the page.

    A figure that cannot be drawn stands as a SectionError, shown in its own place.
    """
    if not standalone:
        return {
            s.name: url_for(
                "findings.figure", study_id=study.id, report_id=report.id, name=s.name, fmt="svg"
            )
            for s in specs
        }

    def inline(spec) -> str:
        svg = _stored_figure(report, spec, "svg")
        return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")

    return {s.name: guard(f"figure {s.name}", inline, s) for s in specs}


def _report_context(study: Study, report: Report, standalone: bool = False) -> dict:
    """What the report body template needs; each section's part is built on its own (a part
    that fails is a SectionError, which the template shows in that section's place)."""
    results = service.results_json(report)
    data = service.report_data(report)
    sample = data.get("sample", {})
    specs = guard("figures", _figure_specs, report)
    figure_list = specs if isinstance(specs, list) else []
    return {
        "study": study,
        "report": report,
        "results": results,
        "sample": sample,
        "sections": present.outcome_sections(results, figure_list, guard=guard),
        "figures_error": specs if isinstance(specs, SectionError) else None,
        "sources": _figure_sources(study, report, figure_list, standalone),
        "methods": guard("methods", service.methods_text, study, report),
        "warnings": guard("warnings", service.plain_warnings, results, sample, results.get("plan")),
        "details": [present.analysis_note(results, n) for n in results.get("warnings", [])],
        # In the order participants met them (choose blocks run after the others).
        "running_blocks": presentation_order(study.blocks),
        "standalone": standalone,
        "present": present,
    }


def _include_simulated() -> bool:
    """The report page's switch: ?simulated=1 includes the simulated participants."""
    value = request.args.get("simulated", "0")
    if value not in ("0", "1"):
        abort(400, description=gettext("simulated must be 0 (real participants only) or 1."))
    return value == "1"


@bp.get("/r/studies/<int:study_id>/report")
@requires_role("viewer")
def report(study: Study, role: str):
    """The study's report: computed from its current data, or a progress or failure state.

    Of the real participants by default; `?simulated=1` includes the simulated ones too (a
    report that is never published).
    """
    include = _include_simulated()
    state = service.report_state(study, include)
    context = {
        "study": study,
        "role": role,
        "state": state,
        "form": ActionForm(formdata=None),
        "published": service.published_report(study),
        "include_simulated": include,
        "simulated_now": service.simulated_count(study),
    }
    if state.computing is not None:
        context["job"] = service.report_job(state.computing)
    if state.shown is not None:
        context.update(_report_context(study, state.shown))
    context["listed"] = service.participant_lists(study, state.shown, include)
    return render_template("findings/report.html", **context)


@bp.post("/r/studies/<int:study_id>/report/retry")
@requires_role("editor")
def retry(study: Study, role: str):
    """Forget the failed computations so the report is computed again."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description=gettext("The form expired; reload the report and try again."))
    service.retry(study)
    return redirect(url_for("findings.report", study_id=study.id))


def _owner_action(study: Study, act, done, form=None) -> Response:
    """Run publish or unpublish from its form: CSRF checked, refusal flashed, then the report."""
    if form is None:
        form = ActionForm()
        if not form.validate_on_submit():
            abort(400, description=gettext("The form expired; reload the report and try again."))
    # The study's state is checked on its locked row: a reopening waits, or is seen.
    study = lock_for_change(study, "owner")
    try:
        act(study, current_user)
    except service.PublishError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(done(), "success")
    return redirect(url_for("findings.report", study_id=study.id))


@bp.get("/r/studies/<int:study_id>/report/publish")
@requires_role("owner")
def publish_confirm(study: Study, role: str):
    """What publishing makes public, to review before the POST that publishes."""
    report = service.finished_current_report(study)
    problems = service.publish_problems(study, report)
    context = {
        "study": study,
        "role": role,
        "report": report,
        "problems": problems,
        "form": PublishForm(formdata=None),
        # Read only: this page never republishes (`published_report` may).
        "published": db.session.scalar(
            sa.select(Report)
            .where(Report.study_id == study.id, Report.published_at.is_not(None))
            .order_by(Report.published_at.desc())
            .limit(1)
        ),
        "authors": service.authors(study),
        "url": url_for("findings.public", slug=study.slug, _external=True),
    }
    if report is not None:
        results = service.public_results(report)
        context.update(results=results, items=present.public_findings(results))
    return render_template("findings/publish_confirm.html", **context)


def _publish_and_draw(study: Study, researcher, confirmed: int) -> Report:
    """Publish, then have a background job draw the public charts so that no visitor waits
    for matplotlib. A chart not drawn yet (or whose job failed) is drawn on its first request.
    """
    report = service.publish(study, researcher, confirmed)
    url = url_for("findings.public", slug=study.slug, _external=True)
    try:
        service.start_public_charts(study, report, url, FIGURES_VERSION)
    except Exception:
        current_app.logger.exception("queueing the public charts of report %s failed", report.id)
        db.session.rollback()
    return report


@bp.post("/r/studies/<int:study_id>/report/publish")
@requires_role("owner")
def publish(study: Study, role: str):
    """Publish the findings of the report the owner reviewed on the confirmation page."""
    form = PublishForm()
    if not form.validate_on_submit():
        abort(
            400,
            description=gettext(
                "The form expired or was incomplete: open “Publish findings…” "
                "again, review what becomes public, then confirm."
            ),
        )
    confirmed = form.report_id.data
    return _owner_action(
        study,
        lambda s, who: _publish_and_draw(s, who, confirmed),
        lambda: gettext(
            "The findings are published at %(url)s",
            url=url_for("findings.public", slug=study.slug, _external=True),
        ),
        form=form,
    )


@bp.post("/r/studies/<int:study_id>/report/unpublish")
@requires_role("owner")
def unpublish(study: Study, role: str):
    """Take the public findings page down."""
    return _owner_action(
        study, service.unpublish, lambda: gettext("The public findings page is down.")
    )


def _report_or_404(study: Study, report_id: int) -> Report:
    """A finished report of the study, else 404."""
    report = service.report_of(study, report_id)
    if report is None:
        abort(404, description=gettext("No finished report with that number for this study."))
    return report


@bp.get("/r/studies/<int:study_id>/report/<int:report_id>/figures/<name>.<fmt>")
@requires_role("viewer")
def figure(study: Study, role: str, report_id: int, name: str, fmt: str):
    """One figure of a report as SVG (shown in the page) or PNG (a download)."""
    if fmt not in FORMATS or not SAFE_NAME.fullmatch(name):
        abort(404)
    row = db.session.execute(
        sa.select(Report.study_id, Report.status, Report.data_sha256).where(Report.id == report_id)
    ).first()
    if row is None or row.study_id != study.id or row.status != "done":
        abort(404)

    def make() -> bytes | None:
        spec = next(
            (s for s in _figure_specs(_report_or_404(study, report_id)) if s.name == name), None
        )
        return _drawn(spec, fmt) if spec is not None else None

    filename = f"{study.slug}-{name}.png" if fmt == "png" else None
    return _chart_response(
        report_id,
        service.figure_name(name),
        fmt,
        _figure_inputs(),
        make,
        public=False,
        filename=filename,
    )


def _inline_css() -> str:
    """The stylesheets' text, for the self-contained HTML report."""
    static = Path(current_app.static_folder)
    return "\n".join((static / name).read_text(encoding="utf-8") for name in CSS_FILES)


@bp.get("/r/studies/<int:study_id>/report/<int:report_id>/report.html")
@requires_role("viewer")
def download_html(study: Study, role: str, report_id: int):
    """The report as one HTML file with its figures and styles inside: it opens offline."""
    report = _report_or_404(study, report_id)
    html = render_template(
        "findings/report_standalone.html",
        css=_inline_css(),
        **_report_context(study, report, standalone=True),
    )
    return _download(html.encode("utf-8"), f"{study.slug}-report.html", "text/html")


@bp.get("/r/studies/<int:study_id>/report/<int:report_id>/results.json")
@requires_role("viewer")
def download_results(study: Study, role: str, report_id: int):
    """results.json of a report."""
    report = _report_or_404(study, report_id)
    text = json.dumps(service.results_json(report), indent=2, ensure_ascii=False) + "\n"
    return _download(text.encode("utf-8"), f"{study.slug}-results.json", "application/json")


@bp.get("/r/studies/<int:study_id>/report/<int:report_id>/tables.zip")
@requires_role("viewer")
def download_tables(study: Study, role: str, report_id: int):
    """The result tables as CSV files (with results.json) in a ZIP."""
    report = _report_or_404(study, report_id)
    return _download(service.tables_zip(report), f"{study.slug}-tables.zip", "application/zip")


@bp.get("/r/studies/<int:study_id>/report/<int:report_id>/reproduction.zip")
@requires_role("viewer")
def download_bundle(study: Study, role: str, report_id: int):
    """The exported data, results.json and an R script that refits the models: for reviewers."""
    report = _report_or_404(study, report_id)
    if service.current_data(study, report.includes_simulated).sha != report.data_sha256:
        abort(
            409,
            description=gettext(
                "New data arrived after this report was computed, so the export "
                "would not match it. Open the report again to get the report of "
                "the current data, then download its bundle."
            ),
        )
    return _download(
        service.bundle_stream(study, report), f"{study.slug}-reproduction.zip", "application/zip"
    )


# --- the preview of the public page -----------------------------------------------------------


def _preview_report(study: Study) -> Report:
    """The finished report of the current data, which publishing would publish; else 404."""
    report = service.finished_current_report(study)
    if report is None:
        abort(
            404,
            description=gettext(
                "There is no finished report of the current data to preview: "
                "open the report, which computes it, then the preview."
            ),
        )
    return report


def _team_only(response: Response) -> Response:
    """Never kept by a cache, never indexed: the preview is for the team."""
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.get("/r/studies/<int:study_id>/findings/preview")
@requires_role("editor")
def preview(study: Study, role: str):
    """The public page as it would look if the current report were published now."""
    report = _preview_report(study)
    context = _public_context(study, report, preview=True)
    context["problems"] = service.publish_problems(study, report)
    return _team_only(Response(render_template("findings/public.html", **context)))


@bp.get("/r/studies/<int:study_id>/findings/preview/charts/<outcome>.<fmt>")
@requires_role("editor")
def preview_chart(study: Study, role: str, outcome: str, fmt: str):
    """A chart card of the preview, drawn from the current report."""
    if fmt not in FORMATS or not SAFE_NAME.fullmatch(outcome):
        abort(404)
    report = _preview_report(study)
    url = url_for("findings.public", slug=study.slug, _external=True)
    data = service.chart(study, report, outcome, fmt, url)
    if data is None:
        abort(404)
    response = Response(data, mimetype=FORMATS[fmt])
    if request.args.get("download"):
        filename = f"{study.slug}-{outcome}.{fmt}"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return _team_only(response)


@bp.get("/r/studies/<int:study_id>/findings/preview/findings.json")
@requires_role("editor")
def preview_results(study: Study, role: str):
    """findings.json as publishing the current report would publish it."""
    report = _preview_report(study)
    text = json.dumps(service.public_results(report), indent=2, ensure_ascii=False) + "\n"
    return _team_only(Response(text, mimetype="application/json"))


# --- the public findings page ------------------------------------------------------------------


def _public_or_404(slug: str) -> tuple[Study, Report]:
    """The study and its published report, else 404 (unknown and unpublished look the same).

    Published findings being recomputed after a withdrawal answer 503 with a page that says so:
    nothing computed from the withdrawn person's data is shown meanwhile.
    """
    study, report = service.public_study(slug)
    if study is None:
        abort(404)
    if report is None:
        withdrew = service.withdrawn_since_published(study)
        if withdrew is not None:
            who = gettext(
                "A participant of “%(title)s” withdrew on %(date)s, and their data were deleted.",
                title=study.title,
                date=f"{withdrew:%d %B %Y}",
            )
        else:
            who = gettext(
                "A participant of “%(title)s” withdrew, and their data were deleted.",
                title=study.title,
            )
        meanwhile = gettext(
            "The findings are being recomputed from the remaining data and are not shown "
            "until then."
        )
        abort(
            make_response(
                render_error(
                    503,
                    gettext("Findings being updated"),
                    f"{who} {meanwhile}",
                    {"Retry-After": "60", "Cache-Control": "no-store"},
                )
            )
        )
    return study, report


def _public_context(study: Study, report: Report, preview: bool = False) -> dict:
    """What the public page and the embed need: aggregates only, and the study's public texts.

    The page shows the participants' title and the owner's public summary; the internal name
    and the private description never reach it, the embed, the charts or the citation. With
    `preview`, the same page for the team before publishing: charts and JSON from team routes.
    """
    results = service.public_results(report)
    url = url_for("findings.public", slug=study.slug, _external=True)
    # The preview shows today's date: the day it would be published.
    published = utcnow() if preview else (study.findings_published_at or report.published_at)
    authors = service.authors(study)
    citation = service.citation(study, report, authors, published, url)
    embed_url = url_for("findings.embed", slug=study.slug, _external=True)
    if preview:

        def chart_url(outcome: str, fmt: str, download: bool = False) -> str:
            return url_for(
                "findings.preview_chart",
                study_id=study.id,
                outcome=outcome,
                fmt=fmt,
                **({"download": 1} if download else {}),
            )

        results_url = url_for("findings.preview_results", study_id=study.id)
    else:

        def chart_url(outcome: str, fmt: str, download: bool = False) -> str:
            return url_for(
                "findings.public_chart",
                slug=study.slug,
                outcome=outcome,
                fmt=fmt,
                **({"download": 1} if download else {}),
            )

        results_url = url_for("findings.public_results", slug=study.slug)
    return {
        "study": study,
        "report": report,
        "results": results,
        "items": present.public_findings(results, guard=guard),
        "studio": guard("plain-language summary", studio.studio_summary, results),
        "present_embed": studio.embed_sentences,
        "methods": guard("methods", service.methods_text, study, report),
        "citation": citation,
        "url": url,
        # Escaped for the page it is pasted into; the template escapes it again to show it.
        "embed_snippet": (
            f'<iframe src="{escape(embed_url)}" '
            f'title="{escape(gettext("Findings: %(title)s", title=study.title))}" '
            'width="100%" height="480" loading="lazy"></iframe>'
        ),
        "summary": study.public_summary or "",
        "authors": authors,
        "team": authors,
        "published": published,
        # Set when the findings shown were recomputed after a participant withdrew.
        "updated": None if preview else service.withdrawn_since_published(study),
        "card_alt": lambda finding: card_alt(finding, study.title, results.get("n_participants")),
        "chart_url": chart_url,
        "results_url": results_url,
        "preview": preview,
        "present": present,
    }


def _public_page(slug: str, template: str) -> Response:
    """Render a public view of a published study; caches must ask again before reuse."""
    study, report = _public_or_404(slug)
    response = Response(render_template(template, **_public_context(study, report)))
    response.headers["Cache-Control"] = "public, no-cache"
    return response


@bp.get("/f/<slug>")
def public(slug: str):
    """The public findings page of a closed study: claims, charts, methods, citation."""
    return _public_page(slug, "findings/public.html")


@bp.get("/f/<slug>/embed")
def embed(slug: str):
    """A compact view of the findings that other sites may show in an iframe."""
    return _public_page(slug, "findings/embed.html")


@bp.after_app_request
def allow_framing_of_embed(response: Response) -> Response:
    """Let other sites frame the embed view (the only page that may be framed).

    Registered on the app before the security headers, so it runs after them and can lift
    their X-Frame-Options and frame-ancestors for this one page.
    """
    if request.endpoint == "findings.embed":
        response.headers.pop("X-Frame-Options", None)
        response.headers["Content-Security-Policy"] = EMBED_CSP
    return response


@bp.get("/f/<slug>/charts/<outcome>.<fmt>")
def public_chart(slug: str, outcome: str, fmt: str):
    """The chart of one finding (1200 x 675 PNG or SVG) with the claim, N and study name on it."""
    if fmt not in FORMATS or not SAFE_NAME.fullmatch(outcome):
        abort(404)
    study, report = _public_or_404(slug)
    if not service.has_finding(report, outcome):
        abort(404)
    url = url_for("findings.public", slug=study.slug, _external=True)
    inputs = service.card_inputs(study, report, url, FIGURES_VERSION)
    filename = f"{study.slug}-{outcome}.{fmt}" if request.args.get("download") else None
    return _chart_response(
        report.id,
        service.card_name(outcome),
        fmt,
        inputs,
        lambda: service.chart(study, report, outcome, fmt, url),
        public=True,
        filename=filename,
    )


@bp.get("/f/<slug>/findings.json")
def public_results(slug: str):
    """The published results without anything about single participants."""
    study, report = _public_or_404(slug)
    text = json.dumps(service.public_results(report), indent=2, ensure_ascii=False) + "\n"
    response = Response(text, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{study.slug}-findings.json"'
    response.headers["Cache-Control"] = "public, no-cache"
    return response
