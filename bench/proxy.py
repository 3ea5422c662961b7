"""nginx as the reverse proxy of the rehearsal: its configuration, run as a child process, and
its access log read back (which node served each request, which ones it passed on)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import LOOPBACK, free_port, stop_session, wait_listening

NGINX = "/usr/sbin/nginx"
# Each request's upstream(s), status and times, tab-separated ($upstream_addr lists every node
# tried, comma-separated, when nginx passed the request on to the next one).
LOG_FORMAT = "$upstream_addr\\t$status\\t$request_time\\t$upstream_status\\t$request"
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def nginx_config(
    port: int,
    nodes: Sequence[int],
    prefix: Path,
    user: str | None = None,
    max_body_mb: int = 200,
    fail_timeout_s: int = 10,
) -> str:
    """Return an nginx configuration that proxies 127.0.0.1:`port` to the gunicorn `nodes`.

    As a deployment would set it: one upstream connection per request (nginx's default, no
    upstream keepalive), a failed connection or a request that died before any response passed
    to the next node for idempotent requests only (nginx never resends a POST that reached a
    node), the client's address, scheme and host in X-Forwarded-* headers (the app believes
    them with TRUSTED_PROXIES=1), uploads up to `max_body_mb`. Every path (pid, logs, temp
    files) lies under `prefix`; nginx stays in the foreground.
    """
    if not nodes:
        raise ValueError("nginx needs at least one node behind it")
    servers = "\n".join(
        f"        server {LOOPBACK}:{node} max_fails=1 fail_timeout={fail_timeout_s}s;"
        for node in nodes
    )
    temps = "\n".join(f"    {name}_temp_path {prefix / name};" for name in TEMP_DIRS)
    user_line = f"user {user};\n" if user else ""
    return f"""{user_line}daemon off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections 8192;
}}

http {{
    log_format rehearsal "{LOG_FORMAT}";
    access_log {prefix / "access.log"} rehearsal;
{temps}
    client_max_body_size {max_body_mb}m;
    keepalive_timeout 75s;

    upstream likeness {{
{servers}
    }}

    server {{
        listen {LOOPBACK}:{port} backlog=4096;

        location / {{
            proxy_pass http://likeness;
            proxy_http_version 1.0;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 10s;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
}}
"""


@dataclass
class ProxyLog:
    """What nginx's access log says: requests per node, and those passed on to another node."""

    by_node: Counter = field(default_factory=Counter)
    passed_on: int = 0
    statuses: Counter = field(default_factory=Counter)

    def figures(self) -> dict[str, object]:
        """Return the log's figures for a run's table."""
        return {
            "requests_per_node": dict(sorted(self.by_node.items())),
            "requests_nginx_passed_to_the_other_node": self.passed_on,
            "statuses_from_nginx": dict(sorted(self.statuses.items())),
        }


def read_proxy_log(lines: Sequence[str], names: dict[str, str] | None = None) -> ProxyLog:
    """Read access log lines in LOG_FORMAT; `names` maps "127.0.0.1:port" to a node's name."""
    names = names or {}
    log = ProxyLog()
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 5:
            continue
        tried = [t.strip() for t in parts[0].split(",") if t.strip()]
        log.statuses[parts[1]] += 1
        if len(tried) > 1:
            log.passed_on += 1
        if tried:
            log.by_node[names.get(tried[-1], tried[-1])] += 1
    return log


class Nginx:
    """nginx in the foreground, in its own session, with its files under a folder of its own."""

    def __init__(self, prefix: Path, nodes: Sequence[int], port: int | None = None) -> None:
        self.prefix = prefix
        self.nodes = list(nodes)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Nginx:
        """Write the configuration, start nginx and wait until it accepts connections."""
        if not Path(NGINX).exists():
            raise RuntimeError(f"{NGINX} is missing: install Debian's nginx package")
        self.prefix.mkdir(parents=True, exist_ok=True)
        user = None
        if os.geteuid() == 0:
            # Workers run as www-data, as Debian's package does; they write the temp folders.
            user = "www-data"
            for name in TEMP_DIRS:
                (self.prefix / name).mkdir(exist_ok=True)
                shutil.chown(self.prefix / name, user)
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_config(self.port, self.nodes, self.prefix, user))
        command = [NGINX, "-p", str(self.prefix), "-e", str(self.prefix / "error.log")]
        check = subprocess.run(
            [*command, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration:\n{check.stderr}")
        with (self.prefix / "stderr.log").open("a") as out:
            self.proc = subprocess.Popen(
                [*command, "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_listening(self.proc, self.port, timeout, "nginx", self.prefix / "error.log")
        return self

    def stop(self) -> None:
        """Stop nginx (a quick shutdown, then SIGKILL to whatever is left of its session)."""
        if self.proc is None:
            return
        stop_session(self.proc, timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None

    def clear_log(self) -> None:
        """Empty the access log (a run's requests only, not the warm-up's); nginx appends."""
        path = self.prefix / "access.log"
        if path.exists():
            path.write_text("")

    def log(self, names: dict[str, str] | None = None) -> ProxyLog:
        """Read the access log."""
        try:
            lines = (self.prefix / "access.log").read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        return read_proxy_log(lines, names)

    def error_log(self) -> str:
        """Return what nginx wrote to its error log."""
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except OSError:
            return ""
