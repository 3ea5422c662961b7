"""Benchmark stimulus ZIP uploads: hostile ZIPs within the upload limit, and a normal set."""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL_SECONDS = 30
GOAL_MB = 300
HEADER = "identity,role,source,file,generator,gender,age_band,consent"
MANIFEST_LIMIT = 5 * 1024 * 1024


def _zip(manifest: str, files: dict[str, bytes]) -> bytes:
    """Return a deflated ZIP with manifest.csv and the files."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.csv", manifest)
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def flat_png(width: int, height: int, colour: tuple[int, ...] = (128, 128, 128)) -> bytes:
    """Return a valid single-colour PNG, RGB or (four values) RGBA, of the given size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor = zlib.compressobj(9)
    row = b"\x00" + bytes(colour) * width
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if len(colour) == 3 else 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def bad_rows(limit_rows: int | None = None) -> bytes:
    """Return a ZIP whose manifest rows each have a bad role, a bad source and a missing file."""
    lines, size, n = [HEADER], len(HEADER) + 1, 0
    while limit_rows is None or n < limit_rows:
        line = f"P{n:06d},x,y,m{n}.jpg,g,,,"
        if size + len(line) + 1 > MANIFEST_LIMIT:
            break
        lines.append(line)
        size += len(line) + 1
        n += 1
    return _zip("\n".join(lines) + "\n", {})


def wide_header() -> bytes:
    """Return a ZIP whose manifest has 100,000 unused columns and then one-cell rows."""
    head = HEADER + "," + ",".join(f"c{i}" for i in range(100_000))
    rows = (MANIFEST_LIMIT - len(head) - 1) // 2
    return _zip(head + "\n" + "x\n" * rows, {})


def flat_pngs(count: int = 12, side: int = 6324) -> bytes:
    """Return a valid set of `count` flat RGB PNGs of side×side pixels (under 40 megapixels)."""
    rows, files = [HEADER], {}
    for i in range(count):
        name = f"big{i}.png"
        rows.append(f"B{i // 2:03d},headshot,{('real', 'ai')[i % 2]},{name},g,,,yes")
        files[name] = flat_png(side, side, (10 * i, 100, 200))
    return _zip("\n".join(rows) + "\n", files)


def rgba_png(side: int = 6324) -> bytes:
    """Return a ZIP of one 40-megapixel half-transparent PNG (the costliest kind to decode)."""
    rows = [HEADER, "R001,headshot,real,rgba.png,g,,,yes"]
    return _zip("\n".join(rows) + "\n", {"rgba.png": flat_png(side, side, (10, 20, 30, 128))})


def normal(identities: int = 40) -> bytes:
    """Return a valid set: every identity with a real and an ai headshot and a probe photo."""
    from PIL import Image

    rows, files, seed = [HEADER], {}, 0
    for i in range(identities):
        code = f"P{i + 1:03d}"
        for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
            seed += 1
            im = Image.effect_noise((600, 800), 40 + seed % 50).convert("RGB")
            out = io.BytesIO()
            im.save(out, format="JPEG", quality=90)
            name = f"{code}-{source}.jpg"
            rows.append(f"{code},{role},{source},{name},Cam,woman,30-44,yes")
            files[name] = out.getvalue()
    return _zip("\n".join(rows) + "\n", files)


CASES = {
    "bad-rows": bad_rows,
    "rows-20k": lambda: bad_rows(20_000),
    "wide-header": wide_header,
    "flat-pngs": flat_pngs,
    "rgba-png": rgba_png,
    "normal": normal,
}


def _status_mb(field: str) -> float:
    """Return a memory figure of this process from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(path: str) -> dict:
    """Upload one ZIP through the real route in this process; return the figures."""
    from survey import create_app
    from survey.extensions import db
    from survey.models import Researcher, Study, StudyMember

    folder = tempfile.mkdtemp(prefix="likeness-bench-upload-")
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "SECRET_KEY": "bench-upload",
            "WTF_CSRF_ENABLED": False,
            "MEDIA_DIR": f"{folder}/media",
        }
    )
    with app.app_context():
        db.create_all()
        owner = Researcher(email="bench@example.org", name="Bench")
        owner.set_password("bench-upload-password")
        study = Study(slug="bench-upload", title="Upload benchmark")
        db.session.add_all([owner, study, StudyMember(study=study, researcher=owner, role="owner")])
        db.session.commit()
        study_id, user_id = study.id, owner.get_id()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    data = Path(path).read_bytes()
    before, peak_before = _status_mb("VmRSS"), _status_mb("VmHWM")
    start = time.perf_counter()
    response = client.post(
        f"/r/studies/{study_id}/stimuli/zip", data={"archive": (io.BytesIO(data), "set.zip")}
    )
    seconds = time.perf_counter() - start
    return {
        "status": response.status_code,
        "seconds": round(seconds, 2),
        "page_bytes": len(response.data),
        "rss_before_mb": round(before, 1),
        "peak_growth_mb": round(max(0.0, _status_mb("VmHWM") - max(before, peak_before)), 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the chosen cases, upload each in a child process, print a JSON line per case."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: all")
    parser.add_argument("--child-timeout", type=float, default=900, help="seconds per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    failed = False
    with tempfile.TemporaryDirectory(prefix="likeness-bench-upload-") as folder:
        for name in args.case or list(CASES):
            path = Path(folder) / f"{name}.zip"
            path.write_bytes(CASES[name]())
            row = {"case": name, "zip_bytes": path.stat().st_size}
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(path)],
                    capture_output=True,
                    text=True,
                    timeout=args.child_timeout,
                    check=True,
                )
                row.update(json.loads(done.stdout.strip().splitlines()[-1]))
                row["goal_met"] = (
                    row["seconds"] <= GOAL_SECONDS and row["peak_growth_mb"] <= GOAL_MB
                )
            except subprocess.TimeoutExpired:
                row.update({"seconds": f">{args.child_timeout:g} (stopped)", "goal_met": False})
            except subprocess.CalledProcessError as exc:
                row.update({"error": exc.stderr[-2000:], "goal_met": False})
            failed |= not row["goal_met"]
            print(json.dumps(row), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
