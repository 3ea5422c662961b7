"""Command line: ``python -m analysis report|summary|power|sample-size``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.io import ContractError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.power import VarianceComponents

KEY_FAMILIES = ("primary", "secondary", "equivalence", "mixed")


def _scale(text: str) -> tuple[str, tuple[int, int]]:
    """Parse KEY=LOW:HIGH, e.g. trust=1:7."""
    try:
        key, bounds = text.split("=", 1)
        low, high = (int(b) for b in bounds.split(":"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected KEY=LOW:HIGH such as trust=1:7, got {text!r}"
        ) from exc
    if not key or low >= high:
        raise argparse.ArgumentTypeError(f"expected KEY=LOW:HIGH with LOW < HIGH, got {text!r}")
    return key, (low, high)


def _rscale(text: str) -> float:
    """Parse the scale r of the Bayes factors' Cauchy prior: a positive finite number or one of
    BayesFactor's names (medium, wide, ultrawide)."""
    from analysis.bayes import RSCALE_NAMES, rscale_value

    value: float | str = text.strip().lower()
    if value not in RSCALE_NAMES:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a positive number or one of {', '.join(RSCALE_NAMES)}, got {text!r}"
            ) from None
    try:
        return rscale_value(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the prior scale must be a positive finite number, got {text!r}"
        ) from None


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by report and summary."""
    parser.add_argument(
        "--plan",
        type=Path,
        metavar="PLAN.json",
        help="preregistration plan (JSON); default: the contract's defaults",
    )
    parser.add_argument(
        "--participants",
        type=Path,
        metavar="FILE",
        help="participants.csv, when it is not beside the trials file",
    )
    parser.add_argument(
        "--scale",
        type=_scale,
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH",
        help="range of a rating scale (repeatable); default 1:7",
    )
    parser.add_argument(
        "--rscale",
        type=_rscale,
        metavar="R",
        help="scale r of the Cauchy prior of the Bayes factors (JZS): a positive number or "
        "medium (0.707), wide (1) or ultrawide (1.414); default: the plan's bayes_rscale, "
        "else medium",
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the mixed models, shared by report and summary; each overrides the plan."""
    from analysis.plan import RANDOM_STRUCTURES, RATING_FAMILIES

    parser.add_argument(
        "--identities",
        type=Path,
        metavar="FILE",
        help="identities.csv (identity descriptors), when it is not beside the trials file",
    )
    parser.add_argument(
        "--random",
        choices=RANDOM_STRUCTURES,
        help="random effects of the mixed models: intercepts, slopes (of condition, by "
        "participant and identity) or auto (slopes when estimable); default: the plan's, "
        "else auto",
    )
    parser.add_argument(
        "--family",
        choices=RATING_FAMILIES,
        help="model of rating outcomes (0/1 outcomes use the logistic GLMM); default: the "
        "plan's, else lmm",
    )
    parser.add_argument(
        "--moderator",
        action="append",
        metavar="COLUMN",
        help="test condition x COLUMN (an identities.csv descriptor or a participants.csv "
        "column; repeatable); default: the plan's, else every identity descriptor",
    )
    parser.add_argument("--no-moderators", action="store_true", help="test no moderator (faster)")


def _models(args) -> dict:
    """The model options given on the command line (None: the plan decides)."""
    return {
        "identities": args.identities,
        "random": args.random,
        "family": args.family,
        "moderators": [] if args.no_moderators else args.moderator,
    }


def build_parser(
    with_power: bool = False, with_sample_size: bool = False
) -> argparse.ArgumentParser:
    """The argument parser; the power and sample-size options (which import numpy and scipy)
    are added only when that is the command."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Analyse a Likeness study export (trials.csv, its folder or a psych-DS ZIP).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = commands.add_parser(
        "report",
        help="write results.json and CSV tables",
        description="Run the full analysis and write DIR/results.json and tidy CSV tables.",
    )
    report.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="trials.csv, a folder holding it, or a psych-DS folder or ZIP",
    )
    report.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder (created when missing)",
    )
    _add_data_arguments(report)
    _add_model_arguments(report)
    report.add_argument("--no-mixed", action="store_true", help="skip the mixed models")
    report.add_argument(
        "--continuity-correction",
        action="store_true",
        help="Wilcoxon tests with R's default continuity correction "
        "(wilcox.test(correct = TRUE)); off by default",
    )

    summary = commands.add_parser(
        "summary",
        help="print the key results table",
        description="Print the key tests and findings of a study "
        "(PATH: the data, or a results.json).",
    )
    summary.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="trials.csv, a folder, a psych-DS ZIP, or a results.json",
    )
    _add_data_arguments(summary)
    _add_model_arguments(summary)
    summary.add_argument("--mixed", action="store_true", help="also fit the mixed models (slower)")

    power = commands.add_parser(
        "power", help="simulate power for numbers of participants and identities"
    )
    if with_power:
        add_power_arguments(power)
    sample_size = commands.add_parser(
        "sample-size", help="participants needed for a target power, and the power curve"
    )
    if with_sample_size:
        add_sample_size_arguments(sample_size)
    return parser


def _read_plan(path: Path | None) -> dict | None:
    """Load a plan file (validated later by the analysis)."""
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the plan ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the plan is not valid JSON ({exc})") from exc


def _number(value, digits: int = 3) -> str:
    """A table cell for a number ('' when missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float) and 0 < abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_lines(results: dict) -> list[str]:
    """The key table of a results dict as lines of text."""
    verdicts = {}
    for f in results.get("findings", []):
        for i in f.get("supported_by", [])[:1]:
            verdicts[i] = f["verdict"]
    n_excluded = results.get("n_excluded", len(results.get("exclusions", [])))
    lines = [
        (
            f"study {results.get('study')}: {results.get('n_participants')} participants "
            f"analysed, {n_excluded} excluded, {results.get('n_identities')} identities; "
            f"alpha {results.get('alpha')}, correction {results.get('correction')}"
        )
    ]
    reasons: dict[str, int] = {}
    for e in results.get("exclusions", []):
        for r in str(e.get("reason", "")).split("; "):
            reasons[r] = reasons.get(r, 0) + 1
    if reasons:
        lines.append("excluded: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    header = ("outcome", "test", "level", "estimate", "95% CI", "p", "p adj", "N", "verdict")
    rows = [header]
    for i, t in enumerate(results.get("tests", [])):
        if t.get("family") not in KEY_FAMILIES:
            continue
        ci = (
            f"[{_number(t.get('ci_low'))}, {_number(t.get('ci_high'))}]"
            if t.get("ci_low") is not None
            else ""
        )
        rows.append(
            (
                t["outcome"],
                t["method"],
                t["level"],
                _number(t.get("estimate")),
                ci,
                _number(t.get("p_value")),
                _number(t.get("p_adjusted")),
                str(t.get("n")),
                verdicts.get(i, ""),
            )
        )
    widths = [max(len(str(r[c])) for r in rows) for c in range(len(header))]
    for k, row in enumerate(rows):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    if len(rows) == 1:
        lines.append("(no tests could be computed)")
    for f in results.get("findings", []):
        lines.append(f"- {f['claim']}")
    moderation = results.get("moderation") or []
    if moderation:
        lines.append("Does the effect hold for every group?")
        lines.extend(f"- {m['outcome']}: {m['claim']}" for m in moderation if m.get("claim"))
    warnings = results.get("warnings", [])
    if warnings:
        lines.append(f"{len(warnings)} warning(s):")
        lines.extend(f"  ! {w}" for w in warnings)
    return lines


def _run_report(args) -> int:
    """The report command."""
    from analysis.report import run

    report = run(
        args.path,
        args.out,
        _read_plan(args.plan),
        participants=args.participants,
        scale_ranges=dict(args.scale),
        mixed_models=not args.no_mixed,
        continuity_correction=args.continuity_correction,
        rscale=args.rscale,
        **_models(args),
    )
    results = report.results
    print(
        f"wrote {args.out / 'results.json'} and {len(report.tables)} CSV tables: "
        f"{results['n_participants']} participants analysed, {results['n_excluded']} excluded, "
        f"{len(results['tests'])} tests, {len(results['warnings'])} warning(s)"
    )
    return 0


def _run_summary(args) -> int:
    """The summary command."""
    if args.path.suffix.lower() == ".json" and args.path.is_file():
        try:
            results = json.loads(args.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.path}: not valid JSON ({exc})") from exc
    else:
        from analysis.io import load
        from analysis.report import analyse

        models = _models(args)
        data = load(
            args.path,
            args.participants,
            scale_ranges=dict(args.scale),
            identities=models.pop("identities"),
        )
        results = analyse(
            data, plan=_read_plan(args.plan), mixed_models=args.mixed, rscale=args.rscale, **models
        ).results
    print("\n".join(summary_lines(results)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the command and return the exit status (2 for bad usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    try:
        parser = build_parser(
            with_power=command == "power", with_sample_size=command == "sample-size"
        )
    except ImportError as exc:
        print(
            f"python -m analysis {command}: power analysis is not available ({exc})",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            return _run_report(args)
        if args.command == "summary":
            return _run_summary(args)
        if args.command == "sample-size":
            return run_sample_size(args)
        return run_power(args)
    except (ContractError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------- power


def _bounded(kind: type, least: float, strict: bool = False, most: float | None = None):
    """argparse type: a number of ``kind`` >= least (> least when strict, < most if given)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if (
            not math.isfinite(value)
            or value < least
            or (strict and value == least)
            or (most is not None and value >= most)
        ):
            bound = f"> {least}" if strict else f">= {least}"
            bound += f" and < {most}" if most is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


def add_power_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m analysis power`` to a (sub)parser.

    Imports analysis.power (numpy, scipy), so an ImportError here means power is unavailable.
    """
    from analysis.power import DEFAULT_LMM_SIMS, DEFAULT_SEED, DEFAULT_SIMS

    parser.description = (
        "Simulate the power of the by-participant paired t test (and, with "
        "--lmm, the mixed model) for numbers of participants and identities."
    )
    parser.add_argument(
        "--participants",
        type=_bounded(int, 2),
        nargs="+",
        required=True,
        metavar="N",
        help="numbers of participants (each >= 2)",
    )
    parser.add_argument(
        "--identities",
        type=_bounded(int, 2),
        nargs="+",
        required=True,
        metavar="N",
        help="numbers of identities (each >= 2)",
    )
    parser.add_argument(
        "--effect",
        type=_bounded(float, -math.inf),
        required=True,
        help="expected ai minus real difference on the rating scale, e.g. -0.3",
    )
    parser.add_argument(
        "--pilot",
        metavar="PATH",
        help="pilot export (trials.csv, folder or psych-DS); its LMM gives the variance components",
    )
    parser.add_argument(
        "--measure", default="trust", help="rating scale of the pilot to use (default trust)"
    )
    _add_variance_arguments(parser)
    parser.add_argument(
        "--replicates",
        type=_bounded(int, 1),
        default=1,
        help="presentations of each identity to each participant (default 1)",
    )
    parser.add_argument(
        "--alpha",
        type=_bounded(float, 0.0, strict=True, most=1.0),
        default=0.05,
        help="two-sided alpha (default 0.05)",
    )
    parser.add_argument(
        "--sims",
        type=_bounded(int, 1),
        default=DEFAULT_SIMS,
        help=f"simulated studies per cell (default {DEFAULT_SIMS})",
    )
    parser.add_argument("--lmm", action="store_true", help="also simulate the mixed model (slow)")
    parser.add_argument(
        "--lmm-sims",
        type=_bounded(int, 1),
        default=DEFAULT_LMM_SIMS,
        help=f"simulated studies per cell for the LMM (default {DEFAULT_LMM_SIMS})",
    )
    parser.add_argument(
        "--seed",
        type=_bounded(int, 0),
        default=DEFAULT_SEED,
        help="random seed (default %(default)s)",
    )


def _add_variance_arguments(parser: argparse.ArgumentParser) -> None:
    """The variance-component options shared by ``power`` and ``sample-size``."""
    from analysis.power import DEFAULT_COMPONENTS

    defaults = DEFAULT_COMPONENTS
    for name, default in (
        ("participant-var", defaults.participant),
        ("identity-var", defaults.identity),
        ("participant-slope-var", defaults.participant_slope),
        ("identity-slope-var", defaults.identity_slope),
    ):
        parser.add_argument(
            f"--{name}",
            type=_bounded(float, 0.0),
            default=None,
            help=f"variance (default {default}, or from --pilot)",
        )
    parser.add_argument(
        "--residual-var",
        type=_bounded(float, 0.0, strict=True),
        default=None,
        help=f"residual variance (default {defaults.residual}, or from --pilot)",
    )


def _components(base: VarianceComponents, args: argparse.Namespace) -> VarianceComponents:
    """The base variance components with the ones given on the command line put in."""
    overrides = {
        "participant": args.participant_var,
        "identity": args.identity_var,
        "residual": args.residual_var,
        "participant_slope": args.participant_slope_var,
        "identity_slope": args.identity_slope_var,
    }
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _variances_text(components: VarianceComponents) -> str:
    """The variance components as one line of text."""
    return (
        f"participant {components.participant:.3g}, identity {components.identity:.3g}, "
        f"residual {components.residual:.3g}, slopes "
        f"{components.participant_slope:.3g} / {components.identity_slope:.3g}"
    )


def _pilot_components(path: str, measure: str) -> VarianceComponents:
    """Fit the pilot's LMM on one rating scale, after the study's default exclusions."""
    return _components_of(_pilot_rows(path, measure), f"{path} ({measure})")


def _components_of(rows: pd.DataFrame, label: str) -> VarianceComponents:
    """Variance components of a pilot's LMM, printing the fit's notes (a singular fit gives a
    variance of zero, a fallback to intercepts no slope variances: the researcher should know)."""
    from analysis.mixed import fit_lmm
    from analysis.power import components_from_pilot

    fit = fit_lmm(rows)
    for note in fit.notes:
        print(f"pilot model {label}: {note}")
    return components_from_pilot(fit)


def format_power_table(table: pd.DataFrame) -> str:
    """The power table as aligned text."""
    shown = table.assign(
        power=table["power"].map("{:.3f}".format),
        ci=[
            f"[{lo:.3f}, {hi:.3f}]"
            for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
        ],
    )
    return (
        shown[["n_participants", "n_identities", "test", "power", "ci", "n_sims"]]
        .rename(
            columns={
                "n_participants": "participants",
                "n_identities": "identities",
                "ci": "95% MC interval",
                "n_sims": "sims",
            }
        )
        .to_string(index=False)
    )


def run_power(args: argparse.Namespace) -> int:
    """Run ``python -m analysis power`` from parsed arguments; print the table, return 0."""
    from analysis.power import DEFAULT_COMPONENTS, power_table

    base = _pilot_components(args.pilot, args.measure) if args.pilot else DEFAULT_COMPONENTS
    components = _components(base, args)
    table = power_table(
        args.participants,
        args.identities,
        args.effect,
        components,
        replicates=args.replicates,
        alpha=args.alpha,
        n_sims=args.sims,
        lmm=args.lmm,
        lmm_sims=args.lmm_sims,
        seed=args.seed,
    )
    source = f"pilot {args.pilot} ({args.measure})" if args.pilot else "given/default values"
    print(
        f"effect (ai - real) {args.effect:g}, alpha {args.alpha:g}, replicates "
        f"{args.replicates}; variances from {source}: {_variances_text(components)}"
    )
    print(format_power_table(table))
    return 0


# ----------------------------------------------------------------------------- sample size

SAMPLE_SIZE_HELP = (
    "Find the participants needed for a target power: analytically for the paired t test "
    "(as R's power.t.test(type = 'paired', strict = TRUE)) from --effect and --sd (or --dz, "
    "or a --pilot), and with --simulate by simulating the LMM, GLMM or paired t test over "
    "numbers of participants."
)


def add_sample_size_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``python -m analysis sample-size`` to a (sub)parser.

    Imports analysis.power (numpy, scipy), so an ImportError here means it is unavailable.
    """
    from analysis.power import DEFAULT_SEED

    parser.description = SAMPLE_SIZE_HELP
    parser.add_argument(
        "--target-power",
        type=_bounded(float, 0.0, strict=True, most=1.0),
        default=0.8,
        help="power to reach (default 0.8)",
    )
    parser.add_argument(
        "--effect",
        type=_bounded(float, -math.inf),
        default=None,
        help="expected ai minus real difference (rating points; log odds with --simulate glmm)",
    )
    parser.add_argument(
        "--sd",
        type=_bounded(float, 0.0, strict=True),
        default=None,
        help="SD of the participants' ai-minus-real differences (paired t test)",
    )
    parser.add_argument(
        "--dz",
        type=_bounded(float, -math.inf),
        default=None,
        help="standardised effect d_z = effect / sd, instead of --effect and --sd",
    )
    parser.add_argument(
        "--alpha",
        type=_bounded(float, 0.0, strict=True, most=1.0),
        default=0.05,
        help="two-sided alpha (default 0.05)",
    )
    parser.add_argument(
        "--pilot",
        metavar="PATH",
        help="pilot export: its participant differences give --effect/--sd when not given, "
        "its LMM the variance components of --simulate",
    )
    parser.add_argument(
        "--measure", default="trust", help="rating scale of the pilot to use (default trust)"
    )
    parser.add_argument(
        "--simulate",
        choices=("lmm", "glmm", "paired_t"),
        help="also search by simulation for this test (lmm: rating, glmm: 0/1 outcome)",
    )
    parser.add_argument(
        "--identities",
        type=_bounded(int, 2),
        nargs="+",
        default=[24],
        metavar="N",
        help="numbers of identities to simulate (default 24)",
    )
    parser.add_argument(
        "--participants",
        type=_bounded(int, 2),
        nargs="+",
        default=None,
        metavar="N",
        help="numbers of participants to simulate (default 8 from 10 to 200)",
    )
    _add_variance_arguments(parser)
    parser.add_argument(
        "--intercept",
        type=_bounded(float, -math.inf),
        default=None,
        help="mean of real photographs (default 4 rating points; log odds 0 for glmm)",
    )
    parser.add_argument(
        "--replicates",
        type=_bounded(int, 1),
        default=1,
        help="presentations of each identity to each participant (default 1)",
    )
    parser.add_argument(
        "--sims",
        type=_bounded(int, 1),
        default=None,
        help="simulated studies per number of participants (default 100; 2000 for paired_t)",
    )
    parser.add_argument(
        "--refine",
        type=_bounded(int, 0),
        default=3,
        help="extra numbers tried by bisection near the answer (default 3)",
    )
    parser.add_argument(
        "--max-studies",
        type=_bounded(int, 1),
        default=None,
        help="refuse to simulate more studies than this (default 5000; 200000 for paired_t)",
    )
    parser.add_argument(
        "--seed",
        type=_bounded(int, 0),
        default=DEFAULT_SEED,
        help="random seed (default %(default)s)",
    )


def _pilot_rows(path: str, measure: str) -> pd.DataFrame:
    """The pilot's included rows of one rating scale, after the study's default exclusions."""
    from analysis.exclusions import included_trials, screen_participants
    from analysis.io import load

    trials, participants = load(path)
    rows = included_trials(trials, screen_participants(trials, participants))
    rows = rows[rows["measure"] == measure]
    if rows.empty:
        raise ValueError(f"pilot {path}: no included rows with measure {measure!r}")
    return rows


def _bar(power: float, width: int = 40) -> str:
    """A text bar of the power, for the terminal curve."""
    return "#" * round(max(0.0, min(1.0, power)) * width)


def format_analytic(found, curve: pd.DataFrame) -> str:
    """The analytic answer and its curve as text."""
    lines = [
        f"paired t test, two-sided alpha {found.alpha:g}: effect {found.effect:g}, "
        f"sd of differences {found.sd_difference:g} (d_z {found.d_z:.3f})",
        f"n = {found.n:.4f} pairs (R: power.t.test(type = 'paired', strict = TRUE)$n); "
        f"recruit {found.n_required} included participants for power {found.target_power:g} "
        f"(power at {found.n_required}: {found.power_at_n_required:.4f})",
    ]
    if found.note:
        lines.append(f"note: {found.note}")
    lines.append("participants  power")
    lines += [
        f"{n:>12}  {p:.3f} {_bar(p)}"
        for n, p in zip(curve["n_participants"], curve["power"], strict=True)
    ]
    return "\n".join(lines)


def format_simulated(found) -> str:
    """The simulated answer per number of identities and its curve with Monte Carlo intervals."""
    lines = [
        f"{found.test} by simulation, two-sided alpha {found.alpha:g}, effect {found.effect:g}, "
        f"target power {found.target_power:g}, {found.n_sims} simulated studies per point "
        f"({found.studies_simulated} in all)"
    ]
    for row in found.required.to_dict("records"):
        n = row["n_required"]
        if n is None or (isinstance(n, float) and math.isnan(n)):
            answer = "not reached on this grid"
        else:
            answer = (
                f"{int(n)} participants (power {row['power']:.3f}, 95% MC interval "
                f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}])"
            )
            confident = row["n_confident"]
            if confident is not None and not (
                isinstance(confident, float) and math.isnan(confident)
            ):
                answer += f"; whole interval above the target from {int(confident)}"
        lines.append(f"{row['n_identities']} identities: {answer}")
    lines.append("participants  identities  power  95% MC interval")
    for r in found.curve.to_dict("records"):
        lines.append(
            f"{r['n_participants']:>12}  {r['n_identities']:>10}  {r['power']:.3f}  "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] {_bar(r['power'])}"
        )
    lines += [f"note: {note}" for note in found.notes]
    return "\n".join(lines)


def run_sample_size(args: argparse.Namespace) -> int:
    """Run ``python -m analysis sample-size``; print the n and the curve, return 0."""
    from analysis.power import (
        DEFAULT_COMPONENTS,
        analytic_curve,
        differences_from_pilot,
        sample_size_paired_t,
        sample_size_simulated,
    )

    rows = _pilot_rows(args.pilot, args.measure) if args.pilot else None
    if args.dz is not None and (args.effect is not None or args.sd is not None):
        raise ValueError("give --dz, or --effect and --sd, not both")
    effect, sd = (args.dz, 1.0) if args.dz is not None else (args.effect, args.sd)
    if rows is not None and (effect is None or sd is None):
        pilot_effect, pilot_sd, n_pilot = differences_from_pilot(rows)
        print(
            f"pilot {args.pilot} ({args.measure}): {n_pilot} participants, mean difference "
            f"{pilot_effect:.3f}, sd {pilot_sd:.3f}"
        )
        effect = pilot_effect if effect is None else effect
        sd = pilot_sd if sd is None else sd
    if effect is None:
        raise ValueError("give --effect (or --dz, or a --pilot)")
    if sd is None and not args.simulate:
        raise ValueError("give --sd (or --dz, a --pilot, or --simulate)")
    if sd is not None:
        found = sample_size_paired_t(effect, sd, power=args.target_power, alpha=args.alpha)
        top = max(found.n_required * 2, 10)
        numbers = sorted({max(2, round(top * k / 12)) for k in range(1, 13)} | {found.n_required})
        print(format_analytic(found, analytic_curve(effect, sd, numbers, args.alpha)))
    if args.simulate:
        base = (
            _components_of(rows, f"{args.pilot} ({args.measure})")
            if rows is not None
            else DEFAULT_COMPONENTS
        )
        components = _components(base, args)
        source = f"pilot {args.pilot} ({args.measure})" if rows is not None else "given/default"
        print(f"variances ({source}): {_variances_text(components)}")
        print(
            format_simulated(
                sample_size_simulated(
                    effect,
                    components,
                    identities=args.identities,
                    participants=args.participants,
                    target_power=args.target_power,
                    test=args.simulate,
                    intercept=args.intercept,
                    replicates=args.replicates,
                    alpha=args.alpha,
                    n_sims=args.sims,
                    refine=args.refine,
                    max_studies=args.max_studies,
                    seed=args.seed,
                )
            )
        )
    return 0
