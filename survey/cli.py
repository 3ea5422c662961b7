"""`flask` commands: seed the demo, create a researcher, expire abandoned participants."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext

from survey.deploy_check import check_deploy_command
from survey.extensions import db
from survey.models import MIN_PASSWORD_LENGTH, Researcher


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Create the demo researcher and the open demo study (safe to run again)."""
    from survey.demo import DEMO_LOGIN, DEMO_PASSWORD, seed_demo

    _researcher, study, created = seed_demo()
    click.echo(("Created" if created else "Found") + f" the demo study '{study.slug}'.")
    click.echo(f"Researcher sign-in: {DEMO_LOGIN} / {DEMO_PASSWORD}")


@click.command("create-researcher")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--admin", is_flag=True, help="Give the account administrator rights.")
@click.password_option(help="Asked for when not given.")
@with_appcontext
def create_researcher_command(email: str, name: str, admin: bool, password: str) -> None:
    """Create a researcher account with EMAIL, asking for its password."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise click.BadParameter(f"{email!r} is not an email address.", param_hint="EMAIL")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.BadParameter(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters.", param_hint="password"
        )
    if db.session.scalar(sa.select(Researcher).where(Researcher.email == email)) is not None:
        raise click.ClickException(f"A researcher with the email {email} already exists.")
    researcher = Researcher(email=email, name=name, is_admin=admin)
    researcher.set_password(password)
    db.session.add(researcher)
    db.session.commit()
    click.echo(f"Created researcher {email}.")


@click.command("urls")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000)
@with_appcontext
def urls_command(host: str, port: int) -> None:
    """Print the demo's participant link and the researcher sign-in URL."""
    from survey.demo import DEMO_LOGIN, DEMO_PASSWORD, DEMO_SLUG

    base = f"http://{host}:{port}"
    click.echo(f"Participant link:   {base}/s/{DEMO_SLUG}")
    click.echo(f"Researcher sign-in: {base}/r/login   ({DEMO_LOGIN} / {DEMO_PASSWORD})")
    click.echo(
        f"Database:           {current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}"
    )


@click.command("expire-participants")
@with_appcontext
def expire_participants_command() -> None:
    """Mark participants still in progress PARTICIPANT_EXPIRE_HOURS after starting as expired.

    Starts do this for their own study; run it from cron so that the monitor and the exports
    show abandoned participants without waiting for the next start.
    """
    from survey.models import utcnow
    from survey.participant.starting import expire_participants

    hours = current_app.config.get("PARTICIPANT_EXPIRE_HOURS")
    n = expire_participants(db.session.connection(), utcnow())
    db.session.commit()
    click.echo(f"Expired {n} participant(s)" + (" (expiry is off)." if not hours else "."))


@click.command("worker")
@click.option("--threads", default=1, show_default=True, help="Jobs run at once by this worker.")
@click.option(
    "--max-seconds", type=float, default=None, help="Stop after this long (default: run on)."
)
@with_appcontext
def worker_command(threads: int, max_seconds: float | None) -> None:
    """Run a job worker on the queue JOBS_BROKER_URL names (stop it with Ctrl-C or SIGTERM)."""
    from survey import jobs

    app = current_app._get_current_object()
    if not app.config["JOBS_BROKER_URL"]:
        raise click.ClickException(
            "JOBS_BROKER_URL is not set, so jobs run inside the web process and no worker is "
            "needed. For separate workers, set it on web and worker alike "
            "(e.g. JOBS_BROKER_URL=redis://127.0.0.1:6379/0)."
        )
    click.echo(f"Job worker {jobs.worker_name()} on queue {app.config['JOBS_QUEUE']}")
    jobs.serve(app, threads=max(1, threads), max_seconds=max_seconds)


def register(app: Flask) -> None:
    """Add the commands to `flask`."""
    from survey.participant.simulate import simulate_participants_command

    for command in (
        seed_demo_command,
        create_researcher_command,
        urls_command,
        simulate_participants_command,
        check_deploy_command,
        expire_participants_command,
        worker_command,
    ):
        app.cli.add_command(command)
