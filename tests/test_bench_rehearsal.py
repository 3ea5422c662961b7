"""The rehearsal's pure parts: nginx's configuration, its access log, the figures and verdicts."""

from __future__ import annotations

import asyncio
import random
import subprocess
from pathlib import Path

import pytest

from bench.load import Behaviour, Ledger, Participant, Unavailable
from bench.proxy import NGINX, TEMP_DIRS, nginx_config, read_proxy_log
from bench.rehearsal import (
    SKIPPED_NO_WORKER,
    all_finished,
    answer_p99,
    most_failures,
    parse,
    phase_line,
)


def test_nginx_config_proxies_to_both_nodes_as_a_deployment_would(tmp_path):
    text = nginx_config(8080, [9001, 9002], tmp_path)
    assert "listen 127.0.0.1:8080" in text
    assert "server 127.0.0.1:9001 max_fails=1 fail_timeout=10s;" in text
    assert "server 127.0.0.1:9002 max_fails=1 fail_timeout=10s;" in text
    # One upstream connection per request: no upstream keepalive pool.
    assert "keepalive " not in text.split("upstream likeness")[1].split("}")[0]
    # Only failures before a response are passed on, and never a POST that reached a node.
    assert "proxy_next_upstream error timeout;" in text
    assert "non_idempotent" not in text
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header} " in text
    assert "daemon off;" in text
    assert "user " not in text.split("daemon")[0]
    for name in ("nginx.pid", "error.log", "access.log", *TEMP_DIRS):
        assert str(tmp_path / name) in text


def test_nginx_config_names_the_workers_user_when_given(tmp_path):
    assert nginx_config(8080, [9001], tmp_path, user="www-data").startswith("user www-data;\n")


def test_nginx_config_needs_a_node(tmp_path):
    with pytest.raises(ValueError, match="at least one node"):
        nginx_config(8080, [], tmp_path)


def test_nginx_accepts_the_configuration(tmp_path):
    assert Path(NGINX).exists(), f"Debian's nginx is needed at {NGINX} (.ci/run installs it)"
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(8080, [9001, 9002], tmp_path))
    done = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_the_access_log_says_which_node_served_and_what_was_passed_on():
    lines = [
        "127.0.0.1:9001\t200\t0.004\t200\tGET /s/demo HTTP/1.1",
        "127.0.0.1:9002\t303\t0.010\t303\tPOST /s/demo/trial/4 HTTP/1.1",
        # Node a refused the connection: nginx passed the GET to node b.
        "127.0.0.1:9001, 127.0.0.1:9002\t200\t0.012\t502, 200\tGET /s/demo/trial HTTP/1.1",
        "127.0.0.1:9001\t502\t0.001\t502\tPOST /s/demo/trial/5 HTTP/1.1",
        "a line that is not in the format",
    ]
    log = read_proxy_log(lines, {"127.0.0.1:9001": "node a", "127.0.0.1:9002": "node b"})
    assert log.figures() == {
        "requests_per_node": {"node a": 2, "node b": 2},
        "requests_nginx_passed_to_the_other_node": 1,
        "statuses_from_nginx": {"200": 2, "303": 1, "502": 1},
    }


def test_answer_p99_reads_the_answers_row():
    assert answer_p99({"answer": {"n": 10, "p99_ms": 87.5}}) == 87.5
    assert answer_p99({"answer": {"n": 0, "p99_ms": float("nan")}}) == float("inf")
    assert answer_p99({}) == float("inf")


def test_most_failures_is_the_worst_participant():
    assert most_failures({}) == 0
    assert most_failures({3: 1, 8: 2, 11: 1}) == 2


def test_jobs_are_finished_only_when_every_row_is():
    assert not all_finished({})
    assert not all_finished({"done": 2, "running": 1})
    assert all_finished({"done": 2})


def test_the_closing_table_names_a_skipped_phase():
    assert phase_line(
        "job worker killed", {"summary": SKIPPED_NO_WORKER, "verdict": "SKIPPED"}
    ) == [
        "job worker killed",
        SKIPPED_NO_WORKER,
        "",
        "SKIPPED",
    ]
    figures = {
        "latency": {"answer": {"n": 5, "p99_ms": 120.4}, "all requests": {"p99_ms": 140.0}},
        "errors": 0,
        "completed": 999,
        "participants": 1000,
        "machine": {"load_average_1m": 1.5, "load_average_1m_at_end": 2.0},
        "verdict": "passed",
    }
    assert phase_line("launch spike", figures) == [
        "launch spike",
        "answers p99 120 ms, all requests p99 140 ms, 0 errors, 999/1000 completed",
        "load 1.5 → 2.0",
        "passed",
    ]


def test_the_command_line_is_bounded():
    assert parse([]).phases == ["spike", "node", "postgres", "worker"]
    assert parse(["--only", "node", "--only", "worker"]).phases == ["node", "worker"]
    assert parse([]).workers == 2
    for wrong in (["--zip-identities", "0"], ["--node-down", "301"], ["--job-seconds", "5"]):
        with pytest.raises(SystemExit):
            parse(wrong)


def test_a_proxy_that_lost_its_node_is_an_outage_the_participant_retries():
    """nginx's 502 (a node died mid-request) is not a server error: the person tries again."""

    async def scenario() -> tuple[Ledger, Exception | None]:
        async def bad_gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = b"<html><title>502 Bad Gateway</title></html>"
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(bad_gateway, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ledger = Ledger()
        person = Participant(4, "t", port, ledger, Behaviour(), random.Random(1), float("inf"), 0.0)
        raised = None
        try:
            await person.send("answer", "POST", "/s/demo/trial/1", {"same": "1"})
        except Unavailable as exc:
            raised = exc
        await person.client.close()
        server.close()
        await server.wait_closed()
        return ledger, raised

    ledger, raised = asyncio.run(scenario())
    assert isinstance(raised, Unavailable)
    assert ledger.errors == []
    assert ledger.outage == {"502 from the proxy": 1}
    assert ledger.failures == {4: 1}
