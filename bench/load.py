"""The load generator: an asyncio HTTP/1.1 client and simulated participants who take the demo
study through the real flow, noting in a ledger everything the server told them."""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.checks import next_positions
from bench.db import SLUG
from bench.servers import LOOPBACK
from survey.participant.simulate import TOKEN, form_token, is_step, parse_trial_form, step_form

COMPLETION_CODE = "LIKENESS-DEMO"
TRY_AGAIN_TITLE = "Please try again in a moment"
# What a reverse proxy answers when the server behind it died mid-request (bad gateway, timeout).
PROXY_GAVE_UP = (502, 504)
POSITION = re.compile(r'class="progress-text">\s*(\d+)\s*/\s*(\d+)')
ASSET = re.compile(r'<(?:img|script)[^>]*\ssrc="(/[^"]+)"|<link[^>]*\shref="(/static/[^"]+)"')
# Median seconds a simulated person spends on a page (reading, looking, deciding). The demo
# says it takes about five minutes: 39 pages, 7.7 s a page. Log-normal around 5 s (mean 5.7 s),
# the simulated participants finish in under four minutes, faster than the study expects.
DEFAULT_THINK_S = 5.0


# --- a minimal HTTP/1.1 client ----------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """Return the body as text."""
        return self.body.decode("utf-8", "replace")

    @property
    def status_code(self) -> int:
        """Return the status under the name a Flask response gives it (for `is_step`)."""
        return self.status

    @property
    def location(self) -> str | None:
        """Return the Location header, as a Flask response does (for `is_step`)."""
        return self.headers.get("location")


class Client:
    """One browser: a keep-alive connection and a cookie jar (cookies matched by path)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cookies: dict[tuple[str, str], str] = {}

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None

    def _cookie_header(self, path: str) -> str:
        """Return the Cookie header for a path."""
        sent = {}
        for (name, cpath), value in sorted(self.cookies.items(), key=lambda kv: len(kv[0][1])):
            if (
                cpath == "/"
                or path == cpath
                or path.startswith(cpath.rstrip("/") + "/")
                or path.startswith(cpath + "?")
            ):
                sent[name] = value
        return "; ".join(f"{k}={v}" for k, v in sent.items())

    def _keep_cookie(self, raw: str) -> None:
        """Store a Set-Cookie header."""
        parts = [p.strip() for p in raw.split(";")]
        name, _, value = parts[0].partition("=")
        path = "/"
        for attr in parts[1:]:
            key, _, val = attr.partition("=")
            if key.lower() == "path" and val:
                path = val
        self.cookies[(name, path)] = value

    async def request(self, method: str, path: str, form: dict[str, str] | None = None) -> Reply:
        """Send one request and read the whole response (reconnecting once on a closed socket)."""
        body = urlencode(form).encode() if form is not None else b""
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "User-Agent: likeness-bench",
            "Accept: text/html",
        ]
        cookie = self._cookie_header(path)
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if form is not None:
            lines += [
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body)}",
            ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for attempt in (1, 2):
            reused = self.writer is not None
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(data)
                await self.writer.drain()
                try:
                    head = await self.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:
                        raise ConnectionResetError("closed before the response") from exc
                    raise
                return await self._read(head)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                # A kept-alive socket the server had closed: a browser retries once, so do we.
                if attempt == 2 or not reused:
                    raise
        raise AssertionError("unreachable")

    async def _read(self, head: bytes) -> Reply:
        """Read the body after the status line and headers (`head`, read in one go: a
        readline per header costs the load generator more than parsing them)."""
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        for line in lines:
            if not line:
                continue
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            if key == "set-cookie":
                self._keep_cookie(value)
            headers[key] = value
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readline()
            body = b"".join(chunks)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Reply(status, headers, body)


# --- simulated participants -------------------------------------------------------------------


@dataclass
class Pace:
    """How fast simulated people move: log-normal thinking time per page around a median."""

    median_s: float = DEFAULT_THINK_S
    spread: float = 0.5

    def draw(self, rng: random.Random) -> float:
        """Return one thinking time in seconds (0 when the median is 0: a stress run)."""
        return 0.0 if self.median_s <= 0 else self.median_s * math.exp(rng.gauss(0.0, self.spread))


@dataclass
class Behaviour:
    """What simulated participants do besides answering, and how they meet an outage."""

    pace: Pace = field(default_factory=Pace)
    assets: bool = True
    # Shares of participants who fill in the optional questions, and who withdraw mid-way.
    demographics: float = 0.0
    withdraw: float = 0.0
    # During a fault a person reloads until the study answers again, for at most this long.
    patience_s: float = 0.0
    # Share of in-doubt answers the browser sends again after the outage (form resubmission).
    resubmit: float = 0.5


@dataclass
class Ledger:
    """Everything the participants were told, for the figures and the database check."""

    acknowledged: dict[int, dict[str, str]] = field(default_factory=dict)
    in_doubt: dict[int, dict[str, str]] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    answer_times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outage: Counter = field(default_factory=Counter)
    outage_times: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)
    resumes: int = 0
    # Participants who met a failed request (a fault's outage) at least once.
    interrupted: set[int] = field(default_factory=set)
    # Failed requests per participant: how many times each had to retry or reload.
    failures: Counter = field(default_factory=Counter)
    warm_up_answers: int = 0
    started: int = 0
    completed: int = 0
    withdrawn: int = 0
    stopped: int = 0

    def error(self, index: int, message: str) -> None:
        """Record something a participant should never have met."""
        self.errors.append(f"participant {index}: {message}")

    def error_kinds(self) -> Counter:
        """Count the errors by kind (their text without the participant and numbers)."""
        return Counter(re.sub(r"\d+", "#", e.split(": ", 1)[1])[:90] for e in self.errors)


class Unavailable(Exception):
    """The server could not be reached, or answered with its try-again page."""


class GaveUp(Exception):
    """A participant stopped: the run's deadline passed, or the study stayed unavailable too
    long."""


class Participant:
    """One simulated person with a browser: a connection, a cookie jar and an image cache."""

    def __init__(
        self,
        index: int,
        run: str,
        port: int,
        ledger: Ledger,
        behaviour: Behaviour,
        rng: random.Random,
        deadline: float,
        clock0: float,
    ) -> None:
        self.index = index
        self.query = f"?PROLIFIC_PID=BENCH{run}x{index}&STUDY_ID=bench&SESSION_ID=s{index}"
        self.client = Client(LOOPBACK, port)
        self.ledger = ledger
        self.behaviour = behaviour
        self.rng = rng
        self.deadline = deadline
        self.clock0 = clock0
        self.cached: set[str] = set()
        self.last_acknowledged = 0
        self.doubtful: set[int] = set()
        # Trials this participant answered (or may have): forgotten again if they withdraw.
        self.posted: list[int] = []

    # -- requests --

    async def send(
        self, kind: str, method: str, path: str, form: dict[str, str] | None = None
    ) -> Reply:
        """Send one request and time it; raise Unavailable on a dead connection or a try-again
        page."""
        if time.perf_counter() > self.deadline:
            raise GaveUp("the run's time ran out")
        start = time.perf_counter()
        try:
            reply = await self.client.request(method, path, form)
        except (OSError, asyncio.IncompleteReadError) as exc:
            await self.client.close()
            self._outage(type(exc).__name__)
            raise Unavailable(type(exc).__name__) from exc
        self.ledger.latencies.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
        if reply.status == 503:
            self._check_try_again(reply, f"{method} {kind}")
            self._outage("503 try-again page")
            raise Unavailable("503")
        if reply.status in PROXY_GAVE_UP:
            # A reverse proxy in front lost the server mid-request (it answers 502 or 504).
            self._outage(f"{reply.status} from the proxy")
            raise Unavailable(str(reply.status))
        if reply.status >= 500 or "Traceback" in reply.text:
            self.ledger.error(
                self.index, f"{method} {kind}: HTTP {reply.status} {_title(reply.text)}"
            )
        return reply

    def _outage(self, what: str) -> None:
        """Count a failed request and when it happened."""
        self.ledger.interrupted.add(self.index)
        self.ledger.failures[self.index] += 1
        self.ledger.outage[what] += 1
        self.ledger.outage_times.append(time.perf_counter() - self.clock0)

    def _check_try_again(self, reply: Reply, where: str) -> None:
        """Check that a 503 is the clear try-again page: title, Retry-After, no trace."""
        text = reply.text
        if TRY_AGAIN_TITLE not in text or "retry-after" not in reply.headers or "Traceback" in text:
            self.ledger.error(
                self.index, f"{where}: a 503 that is not the try-again page: {_title(text)}"
            )

    async def patiently(
        self, kind: str, method: str, path: str, form: dict[str, str] | None = None
    ) -> Reply:
        """Send a request, reloading it through an outage like a patient person (GETs only)."""
        give_up = time.perf_counter() + self.behaviour.patience_s
        wait = 0.25
        while True:
            try:
                return await self.send(kind, method, path, form)
            except Unavailable:
                if time.perf_counter() + wait > give_up:
                    raise GaveUp(f"{path} stayed unavailable") from None
                await asyncio.sleep(wait)
                wait = min(wait * 2, 2.0)

    async def think(self) -> None:
        """Read and decide, or stop when the run's time is up."""
        pause = self.behaviour.pace.draw(self.rng)
        if time.perf_counter() + pause > self.deadline:
            raise GaveUp("the run's time ran out")
        if pause:
            await asyncio.sleep(pause)

    async def assets(self, page: Reply) -> None:
        """Fetch a page's images, style sheets and scripts a browser has not cached yet."""
        if not self.behaviour.assets:
            return
        for img, link in ASSET.findall(page.text):
            url = img or link
            if url in self.cached:
                continue
            reply = await self.patiently(
                "image" if url.startswith("/img/") else "static", "GET", url
            )
            if reply.status != 200:
                self.ledger.error(self.index, f"GET {url}: HTTP {reply.status}")
            self.cached.add(url)

    # -- the flow --

    async def run(self) -> None:
        """Take part from the study link to the debrief; record what happened."""
        ledger = self.ledger
        try:
            await self._take_part()
        except GaveUp as exc:
            ledger.stopped += 1
            ledger.error(self.index, f"stopped: {exc}")
        except Unavailable as exc:
            ledger.error(self.index, f"the study was unavailable outside an outage ({exc})")
        except (ValueError, KeyError, AttributeError) as exc:
            ledger.error(self.index, f"{type(exc).__name__}: {exc}")
        finally:
            await self.client.close()

    async def _take_part(self) -> None:
        """The participant's path through the study."""
        ledger = self.ledger
        page = await self.patiently("link", "GET", f"/s/{SLUG}{self.query}")
        if page.status != 200 or "token" not in page.text:
            ledger.error(self.index, f"study link: HTTP {page.status} {_title(page.text)}")
            return
        await self.assets(page)
        await self.think()
        token = TOKEN.search(page.text)
        form = {
            "csrf_token": form_token(page.text) or "",
            "token": token.group(1) if token else "",
            "agree": "1",
        }
        started = await self.patiently("consent", "POST", f"/s/{SLUG}/consent{self.query}", form)
        if started.status != 303:
            ledger.error(self.index, f"consent: HTTP {started.status} {_title(started.text)}")
            return
        ledger.started += 1
        page = await self.patiently("instructions", "GET", started.headers["location"])
        await self.think()
        withdraw_at = (
            self.rng.randint(2, 30) if self.rng.random() < self.behaviour.withdraw else None
        )
        page = await self.patiently("trial page", "GET", f"/s/{SLUG}/trial")
        while page.status == 200 or is_step(page):
            if is_step(page):
                page = await self._pass_step()
                continue
            position = self._check_position(page)
            if position == withdraw_at:
                await self._withdraw()
                return
            await self.assets(page)
            await self.think()
            page = await self._answer(page, position)
        if page.status not in (302, 303):
            ledger.error(self.index, f"after the trials: HTTP {page.status} {_title(page.text)}")
            return
        if page.headers.get("location", "").endswith("/questions"):
            await self._questions()
        done = await self.patiently("done", "GET", f"/s/{SLUG}/done")
        if done.status == 200 and COMPLETION_CODE in done.text:
            ledger.completed += 1
        else:
            ledger.error(self.index, f"debrief: HTTP {done.status} {_title(done.text)}")

    async def _pass_step(self) -> Reply:
        """Pass a page between trials (block instructions, a break); return the trial page.
        Its POST passes the page once however often it is sent, so it is sent patiently."""
        shown = await self.patiently("step", "GET", f"/s/{SLUG}/step")
        await self.think()
        await self.patiently("step", "POST", f"/s/{SLUG}/step", step_form(shown.text))
        return await self.patiently("trial page", "GET", f"/s/{SLUG}/trial")

    def _check_position(self, page: Reply) -> int:
        """Read a trial page's position and check it is where this participant should be."""
        found = POSITION.search(page.text)
        if found is None:
            raise ValueError("a trial page without its position")
        position = int(found.group(1))
        allowed = next_positions(self.last_acknowledged, self.doubtful)
        if position not in allowed:
            self.ledger.error(
                self.index, f"shown trial {position}, expected one of {sorted(allowed)}"
            )
        return position

    async def _answer(self, page: Reply, position: int) -> Reply:
        """Answer the trial on `page`; return the next trial page (or the redirect after the
        last)."""
        form = parse_trial_form(page.text)
        if form is None:
            raise ValueError("a trial page without its form")
        trial_id = int(form.action.rsplit("/", 1)[1])
        answer = form.answer(self.rng.choice)
        posted = dict(answer)
        self.posted.append(trial_id)
        answer.update(form.hidden, rt_ms=f"{self.rng.uniform(400, 3000):.1f}")
        try:
            reply = await self.send("answer", "POST", form.action, answer)
        except Unavailable:
            reply = await self._after_doubt(trial_id, position, posted, form.action, answer)
        if reply is not None:
            if reply.status != 303:
                self.ledger.error(self.index, f"answer: HTTP {reply.status} {_title(reply.text)}")
                raise GaveUp("an answer was refused")
            self._acknowledge(trial_id, position, posted)
        return await self.patiently("trial page", "GET", f"/s/{SLUG}/trial")

    def _acknowledge(self, trial_id: int, position: int, posted: dict[str, str]) -> None:
        """Note an answer the server confirmed with its redirect."""
        self.ledger.acknowledged[trial_id] = posted
        self.ledger.in_doubt.pop(trial_id, None)
        self.ledger.answer_times.append(time.perf_counter() - self.clock0)
        self.last_acknowledged = position
        self.doubtful.discard(position)

    async def _after_doubt(
        self,
        trial_id: int,
        position: int,
        posted: dict[str, str],
        action: str,
        answer: dict[str, str],
    ) -> Reply | None:
        """After an answer whose request died: maybe resubmit it, else resume from the study
        page."""
        self.ledger.in_doubt[trial_id] = posted
        self.doubtful.add(position)
        self.ledger.resumes += 1
        if self.behaviour.patience_s <= 0:
            raise GaveUp("the server went away")
        if self.rng.random() < self.behaviour.resubmit:
            return await self.patiently("answer", "POST", action, answer)
        return None

    async def _questions(self) -> None:
        """Fill in or skip the optional questions."""
        page = await self.patiently("questions", "GET", f"/s/{SLUG}/questions")
        await self.think()
        form = {"csrf_token": form_token(page.text) or ""}
        if self.rng.random() < self.behaviour.demographics:
            form.update(
                age=str(self.rng.randint(18, 80)),
                gender=self.rng.choice(["woman", "man", "non_binary"]),
                save="1",
            )
        else:
            form["skip"] = "1"
        reply = await self.patiently("questions", "POST", f"/s/{SLUG}/questions", form)
        if reply.status != 303:
            self.ledger.error(self.index, f"questions: HTTP {reply.status} {_title(reply.text)}")

    async def _withdraw(self) -> None:
        """Withdraw: confirm on the withdraw page; the answers given so far are deleted."""
        page = await self.patiently("withdraw", "GET", f"/s/{SLUG}/withdraw")
        form = {"csrf_token": form_token(page.text) or "", "confirm": "1"}
        reply = await self.patiently("withdraw", "POST", f"/s/{SLUG}/withdraw", form)
        if reply.status != 303:
            self.ledger.error(self.index, f"withdraw: HTTP {reply.status} {_title(reply.text)}")
            return
        # Their answers are deleted by design: nothing of theirs is expected in the database.
        for trial_id in self.posted:
            self.ledger.acknowledged.pop(trial_id, None)
            self.ledger.in_doubt.pop(trial_id, None)
        self.ledger.withdrawn += 1


def _title(text: str) -> str:
    """Return a page's <title> (or its first characters) for an error message."""
    found = re.search(r"<title>(.*?)</title>", text, re.DOTALL)
    return (found.group(1) if found else text[:120]).strip()


def warm_up(port: int, ledger: Ledger, n: int = 8, seed: int = 0) -> None:
    """Take a few participants through the study at full speed before a run's clock starts.

    A study opens on a server that has served pages before (the researcher's preview runs):
    each worker has compiled its templates and opened its database connections. Their answers
    join `ledger` for the database check; their timings and counts do not.
    """
    scratch = Ledger()
    behaviour = Behaviour(pace=Pace(0.0))
    asyncio.run(launch(n, 0.5, port, behaviour, 120.0, seed, scratch, run="warmup"))
    if scratch.errors:
        raise RuntimeError(f"the warm-up failed: {scratch.errors[:3]}")
    ledger.acknowledged.update(scratch.acknowledged)
    ledger.warm_up_answers = len(scratch.acknowledged)


async def launch(
    n: int,
    spread_s: float,
    port: int,
    behaviour: Behaviour,
    max_seconds: float,
    seed: int,
    ledger: Ledger,
    during: Any | None = None,
    run: str = "",
) -> float:
    """Start `n` participants at random moments within `spread_s` seconds; return the wall time.

    `during`, when given, is a coroutine function run beside the participants (a fault), called
    with the run's start time.
    """
    rng = random.Random(seed)
    run = run or f"{seed:x}{int(time.time()) % 100000:x}"
    clock0 = time.perf_counter()
    deadline = clock0 + max_seconds
    arrivals = sorted(rng.uniform(0, spread_s) for _ in range(n))

    async def arrive(index: int, at: float) -> None:
        """Wait for this participant's moment, then take part."""
        await asyncio.sleep(max(0.0, clock0 + at - time.perf_counter()))
        person = Participant(
            index, run, port, ledger, behaviour, random.Random(rng.random()), deadline, clock0
        )
        await person.run()

    tasks = [arrive(i, at) for i, at in enumerate(arrivals)]
    if during is not None:
        tasks.append(during(clock0))
    people = asyncio.gather(*tasks)
    await asyncio.gather(people, watch_lag(people, ledger))
    return time.perf_counter() - clock0


async def watch_lag(until: asyncio.Future, ledger: Ledger, every: float = 0.05) -> None:
    """Record how late the load generator's own loop wakes up, until `until` is done.

    On a busy machine the generator itself waits for a core: that delay is inside every
    latency it measures, and this says how large it was.
    """
    while not until.done():
        start = time.perf_counter()
        await asyncio.sleep(every)
        ledger.loop_lag_ms.append((time.perf_counter() - start - every) * 1000)
