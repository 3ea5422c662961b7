"""The multi-machine rehearsal: nginx in front of two gunicorn nodes, a job worker, PostgreSQL and
a shared media folder on this machine, through a launch spike, a killed node, a restarted
database and a killed job worker."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, Request, build_opener

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, faults, launch_spike, upload  # noqa: E402
from bench.proxy import Nginx, ProxyLog  # noqa: E402

PHASES = ("spike", "node", "postgres", "worker")
GOAL_P99_MS = launch_spike.GOAL_P99_MS
NODE_NAMES = ("a", "b")
# The job table the worker reads and the states it writes (docs/jobs.md).
JOB_TABLE = "job"
JOB_RUNNING = ("running",)
JOB_FINISHED = ("done",)
# The app's settings in the stack: one proxy in front; reports and stimulus ZIPs of any size
# computed and imported by jobs (with a worker in the build) rather than in the request.
STACK_SETTINGS = {
    "TRUSTED_PROXIES": "1",
    "REPORT_INLINE_MAX_ROWS": "0",
    "STIMULUS_ZIP_INLINE_MB": "0",
}
SKIPPED_NO_WORKER = "skipped: no job worker in this build (`flask worker` does not exist)"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = common.run_arguments(__doc__, participants=1000, seed=3)
    parser.set_defaults(workers=2)
    parser.add_argument(
        "--only", choices=PHASES, action="append", help="run this phase (repeatable); default all"
    )
    parser.add_argument("--fault-at", type=float, default=45.0, help="seconds into the run")
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument(
        "--node-down", type=float, default=20.0, help="seconds the killed node stays down"
    )
    parser.add_argument(
        "--system-cluster",
        action="store_true",
        help="restart the machine's PostgreSQL instead of a private cluster (stops every other "
        "user of that server for the outage)",
    )
    parser.add_argument("--admin-url", default=common.ADMIN_URL)
    parser.add_argument(
        "--zip-identities", type=int, default=60, help="identities in the imported ZIP"
    )
    parser.add_argument(
        "--job-seconds", type=float, default=600.0, help="longest wait for each job to finish"
    )
    args = common.parse_run(parser, argv)
    if not 0 < args.fault_at < args.max_seconds or not 0 <= args.down <= 120:
        parser.error("--fault-at must fall inside the run and --down be 0-120 s")
    if not 0 <= args.node_down <= 300 or not 1 <= args.zip_identities <= 1000:
        parser.error("--node-down must be 0-300 s and --zip-identities 1-1000")
    if not 10 <= args.job_seconds <= 3600:
        parser.error("--job-seconds must be 10-3600")
    args.phases = [p for p in PHASES if not args.only or p in args.only]
    return args


# --- the job worker ---------------------------------------------------------------------------


def has_worker(env: Mapping[str, str]) -> bool:
    """Tell whether this build has the `flask worker` command."""
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "worker", "--help"],
        env=dict(env),
        cwd=common.ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0


class JobWorker:
    """`flask worker` in its own session, so a SIGKILL takes it whole, as a crash would."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> JobWorker:
        """Start the worker."""
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flask", "--app", "app", "worker"],
                env=self.env,
                cwd=common.ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill9(self) -> int:
        """SIGKILL the worker's whole session; return how many processes were in it."""
        if self.proc is None:
            return 0
        pids = [self.proc.pid, *common.child_pids(self.proc.pid)]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        return len(pids)

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL to what is left)."""
        if self.proc is None:
            return
        common.stop_session(self.proc)
        self.kill9()


# --- the stack --------------------------------------------------------------------------------


class Stack:
    """nginx in front of two gunicorn nodes and, when the build has one, a job worker."""

    def __init__(
        self, env: Mapping[str, str], args: argparse.Namespace, work: Path, jobs: bool
    ) -> None:
        self.env = dict(env)
        self.work = work
        # With a job worker, web nodes and worker share a queue on a Redis of the stack's own.
        self.broker = common.Redis(work / "redis") if jobs else None
        if self.broker is not None:
            self.env["JOBS_BROKER_URL"] = self.broker.url
        settings = common.server_settings(args)
        self.nodes = {
            name: common.Gunicorn(self.env, settings, work / f"node-{name}.log")
            for name in NODE_NAMES
        }
        self.retired: list[common.Gunicorn] = []
        self.nginx = Nginx(work / "nginx", [node.port for node in self.nodes.values()])
        self.worker: JobWorker | None = None
        self.old_workers: list[JobWorker] = []

    def start(self) -> Stack:
        """Start the queue's broker (with a job worker), the nodes, nginx, then the worker."""
        if self.broker is not None:
            self.broker.start()
        for node in self.nodes.values():
            node.start()
        self.nginx.start()
        if self.broker is not None:
            self.worker = JobWorker(self.env, self.work / "worker.log").start()
        return self

    def stop(self) -> None:
        """Stop everything the stack started, whatever state it is in."""
        for stop in (
            [self.nginx.stop]
            + [w.stop for w in [self.worker, *self.old_workers] if w is not None]
            + [n.stop for n in [*self.nodes.values(), *self.retired]]
            + ([self.broker.stop] if self.broker is not None else [])
        ):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"while stopping: {exc}", file=sys.stderr)

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL a node's master and workers at once; return their process ids."""
        return self.nodes[name].kill9()

    def restart_node(self, name: str) -> None:
        """Start a new node on the killed one's port (nginx finds it there again)."""
        old = self.nodes[name]
        self.retired.append(old)
        self.nodes[name] = common.Gunicorn(self.env, old.settings, old.log, old.port)
        self.nodes[name].start()

    def restart_worker(self) -> None:
        """Start a new job worker after the last one was killed."""
        if self.worker is not None:
            self.old_workers.append(self.worker)
        self.worker = JobWorker(self.env, self.work / "worker.log").start()

    def pids(self) -> tuple[int | None, list[int]]:
        """Return nginx's id and the ids of every node's master and workers."""
        nginx = self.nginx.proc.pid if self.nginx.proc is not None else None
        nodes = []
        for node in self.nodes.values():
            nodes += [p for p in [node.master_pid(), *node.worker_pids()] if p]
        return nginx, sorted(nodes)

    def names(self) -> dict[str, str]:
        """Map each node's address (as nginx logs it) to its name."""
        return {f"{common.LOOPBACK}:{n.port}": f"node {name}" for name, n in self.nodes.items()}

    def log_text(self) -> str:
        """Return what the nodes wrote to their logs (a restarted node appends to its own)."""
        return "".join(node.log_text() for node in self.nodes.values())

    def server_times(self) -> dict[str, list[float]]:
        """Return the time inside gunicorn per kind of request, both nodes together."""
        times: dict[str, list[float]] = {}
        for node in self.nodes.values():
            for kind, values in node.server_times().items():
                times.setdefault(kind, []).extend(values)
        return times

    def proxy_log(self) -> ProxyLog:
        """Return what nginx's access log says about the run."""
        return self.nginx.log(self.names())


@contextmanager
def stack_on(url: str, args: argparse.Namespace, work: Path) -> Iterator[Stack]:
    """Migrate and seed the database at `url`, stand the stack up on it, stop it afterwards."""
    env = common.app_env(url, work, **STACK_SETTINGS)
    common.prepare_demo(env)
    stack = Stack(env, args, work, jobs=has_worker(env))
    try:
        yield stack.start()
    finally:
        stack.stop()


def launch_through(
    stack: Stack, args: argparse.Namespace, behaviour: common.Behaviour, fault: Any = None
) -> common.Run:
    """Warm the nodes up through nginx, then run the participants through it (with a fault)."""
    ledger = common.Ledger()
    common.warm_up(stack.nginx.port, ledger)
    for node in stack.nodes.values():
        node.access_log.write_text("")
    stack.nginx.clear_log()
    before = stack.pids()
    print(
        f"{args.participants} participants arriving within {args.spread:.0f} s through nginx, "
        f"two nodes of {common.server_settings(args).describe()} …",
        flush=True,
    )

    wall = common.run_participants(stack.nginx.port, args, behaviour, ledger, fault, stack)
    return common.Run(ledger, wall, stack.log_text(), stack.server_times(), before, stack.pids())


def proxy_figures(stack: Stack) -> dict[str, Any]:
    """Return the deployment's description and nginx's view of the run, for its figures."""
    return {
        "server": describe_stack(stack),
        **stack.proxy_log().figures(),
        "nginx_error_log_lines": len(stack.nginx.error_log().splitlines()),
    }


def describe_stack(stack: Stack) -> str:
    """Describe what runs: the proxy, the nodes and whether a job worker runs beside them."""
    settings = next(iter(stack.nodes.values())).settings
    worker = "one job worker" if stack.worker is not None else "no job worker in this build"
    return f"nginx in front of 2 nodes, each {settings.describe()}; {worker}"


# --- figures ----------------------------------------------------------------------------------


def answer_p99(latency: Mapping[str, Mapping[str, float]]) -> float:
    """Return the p99 of the answers' latency in a latency table (infinite when none)."""
    row = latency.get("answer")
    return float(row["p99_ms"]) if row and row.get("n") else float("inf")


def most_failures(failures: Mapping[int, int]) -> int:
    """Return the most failed requests one participant met (0 when nobody met one)."""
    return max(failures.values(), default=0)


def phase_line(name: str, figures: Mapping[str, Any]) -> list[str]:
    """Return one row of the closing table: the phase, its key figure and its verdict."""
    verdict = figures.get("verdict", "")
    if "latency" in figures:
        latency = figures["latency"]
        key = (
            f"answers p99 {answer_p99(latency):.0f} ms, all requests p99 "
            f"{latency['all requests']['p99_ms']:.0f} ms, {figures['errors']} errors, "
            f"{figures['completed']}/{figures['participants']} completed"
        )
    else:
        key = figures.get("summary", "")
    load = figures.get("machine", {})
    at = (
        f"load {load.get('load_average_1m', '?')} → {load.get('load_average_1m_at_end', '?')}"
        if load
        else ""
    )
    return [name, key, at, verdict]


def print_table(rows: list[list[str]]) -> None:
    """Print the closing table of every phase."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n== the rehearsal")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(flush=True)


# --- the phases -------------------------------------------------------------------------------


def spike(args: argparse.Namespace, work: Path, results: dict[str, dict[str, Any]]) -> None:
    """The launch spike through nginx; then, on its data, the job worker phase.

    Asked for the worker phase alone, the participants still run first (their answers are the
    data the report computes), but their figures are not reported.
    """
    at_start = common.machine()
    behaviour = common.Behaviour(pace=common.Pace(args.think))
    database = common.BenchDatabase(f"likeness_rehearsal_{os.getpid()}", args.admin_url)
    try:
        database.create()
        with stack_on(database.url, args, work) as stack:
            run = launch_through(stack, args, behaviour)
            if "spike" in args.phases:
                problems = common.database_problems(common.read_facts(database.url), run.ledger)
                figures = common.run_figures(run, args, behaviour, at_start)
                figures.update(proxy_figures(stack))
                p99 = answer_p99(figures["latency"])
                goal = f"no error, answers p99 < {GOAL_P99_MS:.0f} ms"
                met = common.verdict(figures, run, problems, p99 < GOAL_P99_MS, goal)
                figures["verdict"] = "passed" if met else "FAILED"
                results["launch spike"] = figures
            if "worker" in args.phases:
                results["job worker killed"] = jobs(stack, database.url, args)
    finally:
        database.drop()


def node(args: argparse.Namespace, work: Path, results: dict[str, dict[str, Any]]) -> None:
    """Kill -9 one node mid-run; participants go on through the other; it comes back later."""
    facts: dict[str, Any] = {"machine": common.machine()}
    database = common.BenchDatabase(f"likeness_rehearsal_node_{os.getpid()}", args.admin_url)
    try:
        database.create()
        with stack_on(database.url, args, work) as stack:

            async def fault(stack: Stack, clock0: float) -> None:
                await faults.wait_until(clock0, args.fault_at)
                facts["fault_at_s"] = faults.since(clock0)
                killed = stack.kill_node(NODE_NAMES[0])
                facts["processes_killed"] = len(killed)
                facts["processes_left_alive"] = sum(1 for pid in killed if common.alive(pid))
                await asyncio.sleep(args.node_down)
                await asyncio.to_thread(stack.restart_node, NODE_NAMES[0])
                facts["node_serving_again_at_s"] = faults.since(clock0)

            run = launch_through(stack, args, faults.behaviour(args), fault)
            problems = common.database_problems(common.read_facts(database.url), run.ledger)
            facts["most_failed_requests_of_one_participant"] = most_failures(run.ledger.failures)
            facts["answers_acknowledged_before_the_kill"] = faults.acknowledged_before(run, facts)
            killed_all = (
                facts.get("processes_left_alive") == 0
                and facts.get("processes_killed", 0) > args.workers
            )
            passed = killed_all and facts["most_failed_requests_of_one_participant"] <= 1
            facts.update(proxy_figures(stack))
            figures = faults.report("node SIGKILL", args, run, facts, problems, passed)
            results["node killed"] = figures
    finally:
        database.drop()


def postgres(args: argparse.Namespace, work: Path, results: dict[str, dict[str, Any]]) -> None:
    """Stop PostgreSQL mid-run and start it again: try-again pages, then full recovery."""
    facts: dict[str, Any] = {"machine": common.machine()}
    with faults.restartable_database(args, work, "likeness_rehearsal_pg") as (url, cluster):
        with stack_on(url, args, work) as stack:
            fault = faults.restart(cluster, args, facts)
            run = launch_through(stack, args, faults.behaviour(args), fault)
            problems = common.database_problems(common.read_facts(url), run.ledger)
            passed = faults.recovered(run, facts)
            facts.update(proxy_figures(stack))
            figures = faults.report("PostgreSQL restart", args, run, facts, problems, passed)
            results["PostgreSQL restarted"] = figures


# --- the job worker phase ---------------------------------------------------------------------


class NoRedirect(HTTPRedirectHandler):
    """Hand redirects back to the caller instead of following them."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Follow nothing."""
        return None


class ResearcherBrowser:
    """A researcher's browser through nginx: a cookie jar, forms with their CSRF token."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{common.LOOPBACK}:{port}"
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()), NoRedirect)

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, str, str]:
        """Send one request; return the status, the Location header and the body."""
        headers = {"Content-Type": content_type} if content_type else {}
        request = Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=300) as reply:
                return reply.status, reply.headers.get("Location", ""), reply.read().decode()
        except HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.read().decode(errors="replace")

    def post_form(self, path: str, fields: Mapping[str, str], form_page: str = "") -> tuple:
        """POST a form with the CSRF token of the page at `form_page` (default: `path`)."""
        from urllib.parse import urlencode

        from survey.participant.simulate import form_token

        _, _, page = self.request("GET", form_page or path)
        body = urlencode({"csrf_token": form_token(page) or "", **fields}).encode()
        return self.request("POST", path, body, "application/x-www-form-urlencoded")

    def post_file(self, path: str, form_page: str, field: str, name: str, data: bytes) -> tuple:
        """POST one file as multipart/form-data with the CSRF token of `form_page`."""
        from survey.participant.simulate import form_token

        _, _, page = self.request("GET", form_page)
        boundary = "rehearsal" + os.urandom(8).hex()
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f"{form_token(page) or ''}\r\n".encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{name}"\r\nContent-Type: application/zip\r\n\r\n'.encode()
            + data
            + b"\r\n",
            f"--{boundary}--\r\n".encode(),
        ]
        return self.request(
            "POST", path, b"".join(parts), f"multipart/form-data; boundary={boundary}"
        )

    def sign_in(self, login: str, password: str) -> None:
        """Sign in; raise when refused."""
        status, _, _ = self.post_form("/r/login", {"identifier": login, "password": password})
        if status not in (302, 303):
            raise RuntimeError(f"signing in as {login} through nginx: HTTP {status}")


def job_states(url: str) -> dict[str, int]:
    """Count the job rows by status."""
    from survey.config import database_uri

    engine = sa.create_engine(database_uri(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT status, count(*) FROM {JOB_TABLE} GROUP BY 1"))
            return {str(status): int(n) for status, n in rows}
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    """Return one value from the database."""
    from survey.config import database_uri

    engine = sa.create_engine(database_uri(url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def all_finished(states: Mapping[str, int]) -> bool:
    """Tell whether every job row has finished (and there is at least one)."""
    return bool(states) and all(status in JOB_FINISHED for status in states)


def wait_for(check: Callable[[], Any], seconds: float, every: float = 0.2) -> Any:
    """Call `check` until it returns something true or `seconds` pass; return its last value."""
    end = time.monotonic() + seconds
    value = check()
    while not value and time.monotonic() < end:
        time.sleep(every)
        value = check()
    return value


def kill_during(
    stack: Stack, url: str, what: str, outcome: Callable[[], bool], seconds: float
) -> dict[str, Any]:
    """Kill -9 the worker once a job runs, start a new one, wait for every job and `outcome`."""
    facts: dict[str, Any] = {}
    clock0 = time.monotonic()
    running = wait_for(lambda: any(s in JOB_RUNNING for s in job_states(url)), min(seconds, 120.0))
    if not running:
        facts["problem"] = f"no {what} job was seen running (finished too fast, or never started)"
        facts["states"] = job_states(url)
        return facts
    facts["running_after_s"] = round(time.monotonic() - clock0, 1)
    assert stack.worker is not None
    facts["worker_processes_killed"] = stack.worker.kill9()
    facts["states_after_the_kill"] = job_states(url)
    stack.restart_worker()
    finished = wait_for(lambda: all_finished(job_states(url)) and outcome(), seconds, every=1.0)
    facts["finished_after_s"] = round(time.monotonic() - clock0, 1)
    facts["states_at_the_end"] = job_states(url)
    if not finished:
        facts["problem"] = f"the {what} did not finish within {seconds:.0f} s of a new worker"
    return facts


def jobs(stack: Stack, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Kill -9 the job worker during a report computation and during a ZIP import."""
    if stack.worker is None:
        print(f"== job worker: {SKIPPED_NO_WORKER}", flush=True)
        return {"summary": SKIPPED_NO_WORKER, "verdict": "SKIPPED"}
    print("== job worker: a report and a ZIP import, the worker killed mid-job", flush=True)
    figures: dict[str, Any] = {"machine": common.machine()}
    try:
        kill_during_jobs(stack, url, args, figures)
    except (sa.exc.SQLAlchemyError, RuntimeError, OSError) as exc:
        # The build's job table or routes are not what this phase expects (docs/jobs.md).
        figures["problem"] = f"{type(exc).__name__}: {exc}"[:500]
        figures["summary"] = f"could not run: {figures['problem'][:160]}"
        figures["verdict"] = "FAILED"
    figures["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    common.print_figures(figures)
    return figures


def kill_during_jobs(
    stack: Stack, url: str, args: argparse.Namespace, figures: dict[str, Any]
) -> None:
    """Enqueue a report, then a ZIP import, through nginx; kill -9 the worker during each."""
    from survey.demo import DEMO_LOGIN, DEMO_PASSWORD

    browser = ResearcherBrowser(stack.nginx.port)
    browser.sign_in(DEMO_LOGIN, DEMO_PASSWORD)
    demo = scalar(url, "SELECT id FROM study WHERE slug = :slug", slug=common.SLUG)

    def report_done() -> bool:
        return bool(
            scalar(
                url,
                "SELECT count(*) FROM report WHERE study_id = :s AND status = 'done'",
                s=demo,
            )
        )

    asking = threading.Thread(
        target=browser.request, args=("GET", f"/r/studies/{demo}/report"), daemon=True
    )
    asking.start()
    figures["report"] = kill_during(stack, url, "report", report_done, args.job_seconds)
    asking.join(timeout=30)
    figures["report"]["reports_of_the_data"] = scalar(
        url, "SELECT count(*) FROM report WHERE study_id = :s", s=demo
    )

    status, location, _ = browser.post_form(
        "/r/studies/new", {"title": "Rehearsal stimuli"}, "/r/studies/new"
    )
    if status not in (302, 303) or "/r/studies/" not in location:
        raise RuntimeError(f"creating a draft study through nginx: HTTP {status}")
    study = int(location.rstrip("/").rsplit("/", 1)[1])
    expected = 3 * args.zip_identities
    archive = upload.normal(args.zip_identities)
    figures["zip_mb"] = round(len(archive) / 2**20, 1)

    def images() -> int:
        return int(scalar(url, "SELECT count(*) FROM image WHERE study_id = :s", s=study))

    sending = threading.Thread(
        target=browser.post_file,
        args=(
            f"/r/studies/{study}/stimuli/zip",
            f"/r/studies/{study}/stimuli",
            "archive",
            "rehearsal.zip",
            archive,
        ),
        daemon=True,
    )
    sending.start()
    figures["ZIP import"] = kill_during(
        stack, url, "ZIP import", lambda: images() == expected, args.job_seconds
    )
    sending.join(timeout=60)
    figures["ZIP import"]["images_stored"] = images()
    figures["ZIP import"]["images_expected"] = expected

    report, imported = figures["report"], figures["ZIP import"]
    passed = (
        "problem" not in report
        and "problem" not in imported
        and report["reports_of_the_data"] == 1
        and imported["images_stored"] == expected
    )
    figures["summary"] = (
        f"report finished {report.get('finished_after_s', '-')} s, ZIP import "
        f"{imported.get('finished_after_s', '-')} s after enqueueing, each with the worker "
        "killed mid-job"
    )
    figures["verdict"] = "passed" if passed else "FAILED"


# --- the whole rehearsal ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the phases, print their figures and a closing table; exit 1 when a goal is missed,
    2 when a phase could not run in this build."""
    args = parse(argv)
    common.stop_on_sigterm()
    results: dict[str, dict[str, Any]] = {}
    steps = [("spike", spike), ("node", node), ("postgres", postgres)]
    for name, step in steps:
        if name not in args.phases and not (name == "spike" and "worker" in args.phases):
            continue
        print(f"== {name}", flush=True)
        work = common.workdir(f"likeness-rehearsal-{name}-")
        try:
            step(args, work, results)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print_table([phase_line(name, figures) for name, figures in results.items()])
    common.write_json(args.json, results)
    verdicts = [figures.get("verdict", "FAILED") for figures in results.values()]
    if any(v not in ("passed", "SKIPPED") for v in verdicts):
        return 1
    return 2 if "SKIPPED" in verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
