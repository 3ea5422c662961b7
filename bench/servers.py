"""Server processes for the benchmarks: gunicorn in its own session, Redis for a job queue, and
CPU read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """Return the CPU time (user + system) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """Return the CPU time the whole machine (all cores) has spent busy since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    """Return the ids of a process's direct children (its gunicorn workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def alive(pid: int) -> bool:
    """Tell whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_session(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a process started in its own session: SIGTERM, up to `timeout` seconds to finish,
    then SIGKILL to whatever is left of its session."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_listening(
    proc: subprocess.Popen, port: int, timeout: float, name: str, where: Path
) -> None:
    """Wait until a just-started server accepts connections on 127.0.0.1:`port`; raise, naming
    `where` its messages went, when it exits first or does not listen within `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {where}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen within {timeout:.0f} s; see {where}")


@dataclass
class ServerSettings:
    """How gunicorn serves Likeness in a run."""

    workers: int = 4
    worker_class: str = "gthread"
    threads: int = 4

    def describe(self) -> str:
        """Return the settings in a few words."""
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"gunicorn {self.worker_class}, {self.workers} workers{threads}"


class Gunicorn:
    """gunicorn serving an app (Likeness's app:app unless told) on 127.0.0.1 in its own session,
    so it can be killed whole.

    With a `log` file, the server writes its messages there and each request's method, path,
    status and time inside gunicorn to `log` with the suffix .access (`server_times`); without
    one, its messages go to this process's output and no access log is written (a request then
    costs the server nothing for logging, as in bench/participants.py's measure of CPU).
    """

    def __init__(
        self,
        env: Mapping[str, str],
        settings: ServerSettings,
        log: Path | None = None,
        port: int | None = None,
        target: str = "app:app",
        chdir: Path = ROOT,
    ) -> None:
        self.env = dict(env)
        self.target = target
        self.settings = settings
        self.log = log
        self.access_log = log.with_suffix(".access") if log is not None else None
        self.chdir = chdir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Gunicorn:
        """Start the master and its workers and wait until every worker answers."""
        s = self.settings
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(self.chdir),
            "--bind",
            f"{LOOPBACK}:{self.port}",
            "--workers",
            str(s.workers),
            "--worker-class",
            s.worker_class,
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ]
        if self.access_log is not None:
            args += [
                "--error-logfile",
                "-",
                # Each request's method, path, status and time inside gunicorn, in microseconds.
                "--access-logfile",
                str(self.access_log),
                "--access-logformat",
                "%(m)s %(U)s %(s)s %(D)s",
            ]
        if s.worker_class == "gthread":
            args += ["--threads", str(s.threads)]
        if self.log is None:
            self.proc = subprocess.Popen(
                args + [self.target], env=self.env, cwd=self.chdir, start_new_session=True
            )
        else:
            with self.log.open("a") as out:
                self.proc = subprocess.Popen(
                    args + [self.target],
                    env=self.env,
                    cwd=self.chdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the server answers and all its workers are up."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.proc.returncode}; see {self._where()}"
                )
            if len(self.worker_pids()) >= self.settings.workers and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self._where()}")

    def _where(self) -> str:
        """Name where the server's messages went."""
        return str(self.log) if self.log is not None else "its output above"

    def _answers(self) -> bool:
        """Tell whether the server answers an HTTP request."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=2) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                return conn.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    def master_pid(self) -> int | None:
        """Return the master's process id while it runs."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def worker_pids(self) -> list[int]:
        """Return the workers' process ids."""
        return child_pids(self.proc.pid) if self.proc is not None else []

    def kill9(self) -> list[int]:
        """SIGKILL the master and every worker at once, as a crash would; return their ids."""
        pids = ([self.proc.pid] if self.master_pid() else []) + self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap(pids)
        return pids

    def _reap(self, pids: Sequence[int], timeout: float = 10.0) -> None:
        """Wait for the master to be reaped and every worker to be gone."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        end = time.monotonic() + timeout
        while any(alive(pid) for pid in pids) and time.monotonic() < end:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), then kill whatever is left of its session."""
        if self.proc is None:
            return
        pids = [self.proc.pid] + self.worker_pids()
        stop_session(self.proc)
        for pid in pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._reap(pids)
        self.proc = None

    def log_text(self) -> str:
        """Return what the server wrote to its log."""
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def server_times(self) -> dict[str, list[float]]:
        """Return the time each request spent inside gunicorn, in ms, by kind of request."""
        times: dict[str, list[float]] = {}
        if self.access_log is None:
            return times
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return times
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[3].isdigit():
                kind = request_kind(parts[0], parts[1])
                times.setdefault(kind, []).append(int(parts[3]) / 1000)
        return times


def request_kind(method: str, path: str) -> str:
    """Name the kind of a participant's request as the load generator does."""
    if path.startswith("/img/"):
        return "image"
    if path.startswith("/static/"):
        return "static"
    page = path.rstrip("/").rsplit("/", 1)[-1]
    if "/trial/" in path:
        return "answer"
    if page in ("trial", "consent", "instructions", "questions", "done", "withdraw"):
        return "trial page" if page == "trial" else page
    return "link" if path.startswith("/s/") else "other"


REDIS = "/usr/bin/redis-server"


class Redis:
    """A private redis-server on a free 127.0.0.1 port, in memory only, in its own session: the
    job queue's broker in a run (its URL goes to JOBS_BROKER_URL)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Redis:
        """Start the server and wait until it accepts connections."""
        if not Path(REDIS).exists():
            raise RuntimeError(f"{REDIS} is missing: install Debian's redis-server package")
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [REDIS, "--bind", LOOPBACK, "--port", str(self.port), "--dir", str(self.folder)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with (self.folder / "redis.log").open("a") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_listening(self.proc, self.port, timeout, "redis-server", self.folder / "redis.log")
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self.proc is not None:
            stop_session(self.proc, timeout=10)
            self.proc.wait(timeout=10)
            self.proc = None
