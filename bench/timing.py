"""Benchmark the frame timing of a sequential match in headless chromium."""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
GOAL_SHARE = 0.99
HZ_RANGE = (57.0, 63.0)
FIXATION_MS, MASK_MS, ISI_MS = 150, 100, 50
EXPOSURE_RANGE = (200, 400)
PHASES = ("fixation", "exposure", "mask", "isi")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Timing bench</title>
<link rel="stylesheet" href="/static/css/likeness.css">
<link rel="stylesheet" href="/static/css/survey.css">
<script src="/static/js/survey.js" defer></script></head>
<body class="survey trial-page"><main id="main" class="survey-main">
<form class="trial task-match questions-1" method="post" action="/answer" data-trial data-once
  data-sequential data-exposure-ms="{exposure}" data-fixation-ms="{fixation}"
  data-mask-ms="{mask}" data-isi-ms="{isi}">
  <input type="hidden" name="rt_ms" value="" data-rt>
  {fields}
  <div class="stimuli pair sequential">
    <figure class="stimulus fixation" hidden aria-hidden="true">
      <div class="frame"><span class="cross">+</span></div></figure>
    <figure class="stimulus mask" hidden aria-hidden="true">
      <div class="frame"><div class="pattern"></div></div></figure>
    <figure class="stimulus headshot">
      <div class="frame"><img src="/img/a.png?{n}" alt="Headshot" data-stimulus></div></figure>
    <figure class="stimulus probe">
      <div class="frame"><img src="/img/b.png?{n}" alt="Probe" data-stimulus></div></figure>
  </div>
  <fieldset class="question" data-question="same"><legend>Same person?</legend>
    <label class="choice"><input type="radio" name="same" value="1" data-key="f" required>
      <span>Same</span></label>
    <label class="choice"><input type="radio" name="same" value="0" data-key="j">
      <span>Different</span></label>
  </fieldset>
  <button type="submit" class="next">Next</button>
</form></main></body></html>
"""
FIELDS = "".join(
    f'<input type="hidden" name="{name}" value="" data-timing="{name}">'
    for name in (
        "timing",
        "refresh_hz",
        "fixation_ms_achieved",
        "exposure_ms_achieved",
        "mask_ms_achieved",
        "isi_ms_achieved",
    )
)


def _photo(shade: int) -> bytes:
    """A 600x800 PNG with some structure to decode."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 800), (shade, shade, shade))
    draw = ImageDraw.Draw(image)
    for i in range(0, 290, 10):
        draw.ellipse((i, i, 600 - i, 800 - i), outline=(i % 255, 80, 255 - shade), width=3)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def serve() -> tuple[ThreadingHTTPServer, str]:
    """Serve the test page, the static files and two photos on 127.0.0.1."""
    photos = {"/img/a.png": _photo(200), "/img/b.png": _photo(120)}
    static = ROOT / "static"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/trial":
                query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
                page = PAGE.format(fields=FIELDS, **query)
                return self._send(page.encode(), "text/html; charset=utf-8")
            if url.path in photos:
                return self._send(photos[url.path], "image/png")
            if url.path.startswith("/static/"):
                path = (static / url.path.removeprefix("/static/")).resolve()
                if path.is_file() and static in path.parents:
                    kind = "text/css" if path.suffix == ".css" else "text/javascript"
                    return self._send(path.read_bytes(), kind)
            self.send_error(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def run(presentations: int, seed: int) -> dict:
    from playwright.sync_api import sync_playwright

    rng = random.Random(seed)
    server, base = serve()
    records = []
    started = time.monotonic()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for n in range(presentations):
                requested = {
                    "fixation": FIXATION_MS,
                    "exposure": rng.randint(*EXPOSURE_RANGE),
                    "mask": MASK_MS,
                    "isi": ISI_MS,
                }
                query = "&".join(f"{k}={v}" for k, v in requested.items())
                page.goto(f"{base}/trial?{query}&n={n}")
                page.locator("form[data-shown]").wait_for(timeout=30000)
                posted = page.eval_on_selector_all(
                    "[data-timing]", "els => Object.fromEntries(els.map(e => [e.name, e.value]))"
                )
                records.append((requested, posted))
            browser.close()
    finally:
        server.shutdown()
    return summarise(records, time.monotonic() - started)


def summarise(records: list, seconds: float) -> dict:
    """The shares within one frame per phase, the worst errors and the refresh rates."""
    hz = [float(p["refresh_hz"]) for _, p in records if p["timing"] == "frames"]
    untimed = sum(1 for _, p in records if p["timing"] != "frames")
    phases = {}
    for phase in PHASES:
        errors = []  # in frames
        for requested, posted in records:
            if posted["timing"] != "frames":
                continue
            frame = 1000 / float(posted["refresh_hz"])
            achieved = float(posted[f"{phase}_ms_achieved"])
            errors.append(abs(achieved - requested[phase]) / frame)
        phases[phase] = {
            "within_one_frame": sum(e <= 1 for e in errors) / len(records),
            "within_half_a_frame": sum(e <= 0.5 + 1e-6 for e in errors) / len(records),
            "worst_error_frames": round(max(errors), 3) if errors else None,
        }
    return {
        "presentations": len(records),
        "untimed": untimed,
        "refresh_hz": {
            "min": round(min(hz), 2),
            "median": round(statistics.median(hz), 2),
            "max": round(max(hz), 2),
        }
        if hz
        else None,
        "phases": phases,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presentations", type=int, default=500)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(max(1, min(args.presentations, 5000)), args.seed)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    share = figures["phases"]["exposure"]["within_one_frame"]
    hz = figures["refresh_hz"]
    at_60 = hz is not None and HZ_RANGE[0] <= hz["min"] and hz["max"] <= HZ_RANGE[1]
    met = share >= GOAL_SHARE and at_60
    print(
        f"exposure within one frame: {share:.1%} (goal {GOAL_SHARE:.0%}), refresh "
        f"{hz['min'] if hz else '-'}-{hz['max'] if hz else '-'} Hz: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
