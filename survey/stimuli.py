"""Stimulus images: validate and clean one upload, and read a stimulus set from a ZIP.

Pure functions (Pillow and the standard library); nothing here writes to disk or the database.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import stat
import struct
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO

from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

MIB = 1024 * 1024
MAX_IMAGE_BYTES = 20 * MIB
MAX_IMAGE_PIXELS = 40_000_000
MIN_SIDE = 64
DISPLAY_MAX = (800, 1000)
MAX_ZIP_FILES = 2000
MAX_ZIP_BYTES = 500 * MIB
MAX_MANIFEST_BYTES = 5 * MIB
# A ZIP's images together: decoding costs time and memory by the pixel, not by the byte (a flat
# 40-megapixel PNG is a few KB), so the set has a pixel budget and a time budget of its own.
MAX_ZIP_PIXELS = 150_000_000
MAX_ZIP_SECONDS = 20.0
# The report keeps this many problems of each kind, and this many in all; the rest are counted.
MAX_PROBLEMS_PER_KIND = 20
MAX_PROBLEMS = 500
# Checking stops after this many errors: every valid row needs a file of its own, so a manifest
# far longer than the ZIP's files is mostly errors, and more of them would tell nothing new.
MAX_ERRORS_CHECKED = 1000

JPEG_QUALITY = 95
DISPLAY_QUALITY = 85

# Pillow format name -> (content type, extension); MPO is a JPEG with extra pictures.
_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
# Signatures of formats people often upload by mistake, to say what the file is instead.
_OTHER_FORMATS = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"BM", "a BMP"),
    (b"II*\x00", "a TIFF"),
    (b"MM\x00*", "a TIFF"),
    (b"%PDF", "a PDF"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")

IDENTITY_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ImageError(ValueError):
    """An uploaded image that cannot be used, with a message naming the file."""

    def __init__(self, filename: str, reason: str) -> None:
        """Keep the file name and the reason apart, so reports can show either."""
        self.filename = filename
        self.reason = reason
        super().__init__(f"{filename or 'The image'}: {reason}")


@dataclass(frozen=True)
class ProcessedImage:
    """A validated image, re-encoded without metadata, with a smaller copy for display.

    ``data`` holds the image in its own format (JPEG, PNG or WebP) with the EXIF orientation
    applied and every metadata block (EXIF, GPS, XMP, IPTC, comments, text chunks, ICC) left
    out: colours are converted to sRGB first, so dropping the ICC profile changes nothing on
    screen. ``sha256`` is the hash of ``data``, the bytes that are stored and served, so the
    same picture uploaded twice (even with different metadata) has the same hash.
    """

    content_type: str
    ext: str
    width: int
    height: int
    sha256: str
    data: bytes = field(repr=False)
    display: bytes = field(repr=False)
    display_content_type: str
    display_width: int
    display_height: int

    @property
    def byte_size(self) -> int:
        """Return the size of the stored image in bytes."""
        return len(self.data)

    @property
    def display_ext(self) -> str:
        """Return the file extension of the display copy."""
        return "webp" if self.display_content_type == "image/webp" else "jpg"


def validate_identity_code(code: str) -> str:
    """Return the identity code when it is 1-32 letters, digits, '-' or '_'."""
    if not isinstance(code, str) or not IDENTITY_CODE_RE.fullmatch(code):
        raise ValueError(
            f"identity code {code!r} must be 1 to 32 letters, digits, '-' or '_' (e.g. P001)"
        )
    return code


def _megabytes(n: int) -> str:
    """Format a byte count in MiB for messages."""
    return f"{n / MIB:.1f} MiB"


def _megapixels(n: int) -> str:
    """Format a pixel count in megapixels for messages."""
    return f"{n / 1e6:.1f} megapixels"


def _other_format(data: bytes) -> str | None:
    """Name a common image format that is not accepted, from the first bytes."""
    for signature, name in _OTHER_FORMATS:
        if data.startswith(signature):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "a HEIC/AVIF"
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Read a WebP's canvas size from its RIFF header."""
    if len(data) < 30 or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


# JPEG start-of-frame markers (the ones that carry the size): C0-CF except DHT, JPG and DAC.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Read a JPEG's size from its start-of-frame segment."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Read the pixel size from a JPEG, PNG or WebP header, without decoding anything."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        # A file cut off inside its header has no size to read: Pillow then says what is wrong.
        return struct.unpack(">II", data[16:24]) if len(data) >= 24 else None
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"RIFF"):
        return _webp_size(data)
    return None


@contextlib.contextmanager
def _reading(filename: str, what: str) -> Iterator[None]:
    """Turn Pillow's errors while reading into an ImageError.

    The process's warning filters are left alone (changing them is not thread-safe, and
    uploads run in threaded workers): an image past Pillow's own pixel guard is refused by
    `process_image`'s pixel check, from the header and again once opened.
    """
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(filename, f"is too large to open safely ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ImageError(filename, "is not a JPEG, PNG or WebP image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise ImageError(filename, f"{what} ({exc})") from None


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert an image with an embedded ICC profile to sRGB; drop the profile otherwise."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return im
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            im, profile, ImageCms.createProfile("sRGB"), outputMode=out_mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken profile: show the pixels as they are rather than refuse the photo.
        return im
    assert converted is not None
    return converted


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Return the image as RGB, RGBA (only when some pixel is transparent) or L."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits instead of clipping at 255.
        im = im.convert("I").point(lambda v: v / 257).convert("L")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("P", "PA", "LA") or "transparency" in im.info:
        im = im.convert("RGBA")
    elif im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGB")
    if im.mode == "RGBA" and im.getchannel("A").getextrema() == (255, 255):
        im = im.convert("RGB")
    return im


def _encode(im: Image.Image, fmt: str, *, quality: int, subsampling: int = -1) -> bytes:
    """Encode an image with no metadata at all in the given format."""
    out = io.BytesIO()
    if fmt in ("JPEG", "MPO"):
        options = {"quality": quality}
        if subsampling in (0, 1, 2):
            options["subsampling"] = subsampling
        im.save(out, format="JPEG", **options)
    elif fmt == "PNG":
        im.save(out, format="PNG")
    else:
        im.save(out, format="WEBP", quality=quality, method=4)
    return out.getvalue()


def process_image(
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int = MIN_SIDE,
    display_max: tuple[int, int] = DISPLAY_MAX,
) -> ProcessedImage:
    """Validate an uploaded image and return it stripped of metadata, with a display copy.

    The content decides the format, never the name. The pixel count is checked from the
    header before anything is decoded; the image is then fully decoded (so truncated files
    fail), turned upright per its EXIF orientation, converted to sRGB and re-encoded in its
    own format without metadata. The display copy fits in ``display_max`` (width, height)
    and is a JPEG, or a WebP when the image has transparency. Pillow's own guard
    (``Image.MAX_IMAGE_PIXELS``) also applies, so ``max_pixels`` above it has no effect.
    Raises ImageError (a ValueError) naming the file when the image cannot be used.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data for {filename!r} must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError(filename, "is empty")
    if len(data) > max_bytes:
        raise ImageError(
            filename,
            f"is {_megabytes(len(data))}, larger than the limit of {_megabytes(max_bytes)}",
        )
    other = _other_format(data)
    if other:
        raise ImageError(filename, f"is {other} file; use a JPEG, PNG or WebP image")

    def check_pixels(width: int, height: int) -> None:
        """Refuse an image with too many pixels before it is decoded."""
        if width * height > max_pixels:
            raise ImageError(
                filename,
                f"is {width}×{height} pixels ({_megapixels(width * height)}), more than the "
                f"limit of {_megapixels(max_pixels)}",
            )
        guard = Image.MAX_IMAGE_PIXELS
        if guard and width * height > guard:
            raise ImageError(
                filename,
                f"is too large to open safely ({width}×{height} pixels, more than Pillow's "
                f"guard of {_megapixels(guard)})",
            )

    # Checked before Pillow opens the file: its WebP reader allocates the canvas on open.
    declared = _header_size(data)
    if declared:
        check_pixels(*declared)
    with _reading(filename, "could not be read"):
        im = Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP"))
    fmt = im.format or ""
    if fmt not in _FORMATS:
        raise ImageError(filename, "is not a JPEG, PNG or WebP image")
    check_pixels(*im.size)
    # MPO (phones, stereo cameras) keeps extra pictures after the main one; it is a still photo.
    if fmt != "MPO" and getattr(im, "is_animated", False):
        raise ImageError(filename, "is animated; use a still image")
    with _reading(filename, "is truncated or corrupt"):
        im.load()
        subsampling = JpegImagePlugin.get_sampling(im) if fmt in ("JPEG", "MPO") else -1
        # In place: a copy of a 40-megapixel picture is 120 MB more in the worker.
        ImageOps.exif_transpose(im, in_place=True)
    upright = im
    width, height = upright.size
    if min(width, height) < min_side:
        raise ImageError(
            filename, f"is {width}×{height} pixels; each side must be at least {min_side} pixels"
        )
    clean = _normalise_mode(_to_srgb(upright))
    # Whatever metadata the conversions carried along, none of it may reach the output.
    clean.info = {}
    stored = _encode(clean, fmt, quality=JPEG_QUALITY, subsampling=subsampling)

    # The stored bytes are made, so the full-size image is shrunk in place, not copied first.
    display = clean
    factor = min(display.width // display_max[0], display.height // display_max[1])
    if display.mode == "RGBA" and factor >= 4:
        # Pillow resizes a transparent image through a full-size premultiplied copy (160 MB for
        # 40 megapixels); a box reduction to two to four times the display size first avoids it.
        display = display.reduce(factor // 2)
    display.thumbnail(display_max, Image.Resampling.LANCZOS)
    display_fmt = "WEBP" if display.mode == "RGBA" else "JPEG"
    content_type, ext = _FORMATS[fmt]
    return ProcessedImage(
        content_type=content_type,
        ext=ext,
        width=width,
        height=height,
        sha256=hashlib.sha256(stored).hexdigest(),
        data=stored,
        display=_encode(display, display_fmt, quality=DISPLAY_QUALITY),
        display_content_type=_FORMATS[display_fmt][0],
        display_width=display.width,
        display_height=display.height,
    )


# --- Stimulus set ZIP ---------------------------------------------------------------------

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("identity", "role", "source", "file", "generator")
OPTIONAL_COLUMNS = ("age_band", "gender", "ethnicity", "consent")
DESCRIPTORS = ("age_band", "gender", "ethnicity")
# Which sources each role may have (the image table's role_source constraint).
ROLE_SOURCES = {"headshot": ("real", "ai"), "probe": ("photo",)}
HEADSHOT_SOURCES = ("real", "ai")
# Column widths of the identity and image tables, so an import never fails half-way.
FIELD_LIMITS = {"age_band": 32, "gender": 32, "ethnicity": 64, "generator": 200, "file": 255}
CONSENT_VALUES = {"yes": True, "no": False, "": None}
# Files that archivers and file browsers add; they are neither stimuli nor problems.
_JUNK_NAMES = {"thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Problem:
    """One problem found in a stimulus set, at level "error" or "warning".

    ``row`` numbers manifest.csv as a spreadsheet shows it: the header is row 1 and the
    first data row is row 2. It is None for problems not about one row (the ZIP itself,
    an entry the manifest does not list). ``file`` is the image path concerned, if any.
    Only errors stop an import; warnings are shown to the researcher.
    """

    row: int | None
    file: str | None
    message: str
    level: str = "error"

    def __str__(self) -> str:
        """Format the problem as one line: where, then what."""
        where = ", ".join(
            part for part in (f"row {self.row}" if self.row else "", self.file or "") if part
        )
        return f"{where}: {self.message}" if where else self.message


@dataclass
class StimulusIdentity:
    """A person of the set: code, descriptors and the consent the manifest records."""

    code: str
    row: int
    age_band: str = ""
    gender: str = ""
    ethnicity: str = ""
    # True for "yes", False for "no", None when the manifest does not say.
    consent: bool | None = None

    @property
    def consent_recorded(self) -> bool:
        """Tell whether image-use consent is recorded as given."""
        return self.consent is True


@dataclass(frozen=True)
class StimulusImage:
    """An image of the set with its manifest row and the processed, stripped image."""

    identity: str
    role: str
    source: str
    generator: str
    original_filename: str
    row: int
    image: ProcessedImage


# What varies between problems of one kind: quoted values, numbers and identity codes.
_PROBLEM_DETAIL = re.compile(r"'[^']*'|\d+(?:\.\d+)?|(?<=identity )\S+")


def problem_kind(problem: Problem) -> tuple[str, str]:
    """Return what problems of one kind share: the level and the message without its values."""
    return problem.level, _PROBLEM_DETAIL.sub("…", problem.message)


@dataclass
class StimulusSet:
    """What a stimulus ZIP holds: identities, valid images and every problem found.

    ``problems`` keeps the first MAX_PROBLEMS_PER_KIND problems of each kind (and MAX_PROBLEMS
    in all), so a manifest of a hundred thousand bad rows gives a report that can be read;
    ``hidden`` counts the problems left out, by kind, with the first of each as an example.
    """

    identities: dict[str, StimulusIdentity] = field(default_factory=dict)
    images: list[StimulusImage] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    error_count: int = 0
    hidden: dict[tuple[str, str], list] = field(default_factory=dict)
    _kept: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Problem]:
        """Return the problems that stop an import (those kept for the report)."""
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Return the problems shown to the researcher that do not stop an import."""
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        """Tell whether the set may be imported: no error-level problem."""
        return not self.error_count

    def hidden_summary(self, level: str) -> list[tuple[int, Problem]]:
        """Return (how many were left out, an example) for each kind of problem at this level."""
        return [
            (count, example) for (lvl, _), (count, example) in self.hidden.items() if lvl == level
        ]

    def add(self, row: int | None, file: str | None, message: str, level="error") -> None:
        """Record a problem, or only count it once its kind has filled its share of the report."""
        self.add_problem(Problem(row, file, message, level))

    def add_problem(self, problem: Problem) -> None:
        """Record a problem made elsewhere, with the same bounds as `add`."""
        if problem.level == "error":
            self.error_count += 1
        kind = problem_kind(problem)
        kept = self._kept.get(kind, 0)
        if kept < MAX_PROBLEMS_PER_KIND and len(self.problems) < MAX_PROBLEMS:
            self._kept[kind] = kept + 1
            self.problems.append(problem)
            return
        seen = self.hidden.setdefault(kind, [0, problem])
        seen[0] += 1


class _Unusable(Exception):
    """A ZIP entry or manifest cell that cannot be used, with the reason."""


class _OverBudget(Exception):
    """The set needs more pixels or time than a ZIP may use; the message names the limit."""


def _entry_name(info: zipfile.ZipInfo) -> str:
    """Return an entry's name as UTF-8 text in NFC with forward slashes."""
    name = info.filename
    if not info.flag_bits & 0x800:
        # Old archivers write UTF-8 names without the flag; zipfile then reads them as cp437.
        with contextlib.suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return unicodedata.normalize("NFC", name.replace("\\", "/"))


def _path_problem(path: str) -> str | None:
    """Say why a path may not be used inside the set, or return None when it is safe."""
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "is an absolute path; paths must be relative to the ZIP's top folder"
    if ".." in path.split("/"):
        return "uses '..' to lead outside the ZIP"
    if "\x00" in path:
        return "has a NUL character in its name"
    return None


def _is_junk(path: str) -> bool:
    """Tell whether an entry is archiver or file-browser clutter (__MACOSX, .DS_Store …)."""
    parts = path.rstrip("/").split("/")
    return (
        parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in parts)
        or parts[-1].lower() in _JUNK_NAMES
    )


def _zip_entries(
    zf: zipfile.ZipFile, result: StimulusSet, max_files: int, max_total_bytes: int
) -> dict[str, zipfile.ZipInfo] | None:
    """Map the usable file entries by name; None when the archive as a whole is refused."""
    infos = zf.infolist()
    if not infos:
        result.add(None, None, "The ZIP archive is empty")
        return None
    if len(infos) > max_files:
        result.add(
            None, None, f"The ZIP has {len(infos)} entries, more than the limit of {max_files}"
        )
        return None
    declared = sum(info.file_size for info in infos)
    if declared > max_total_bytes:
        result.add(
            None,
            None,
            f"The ZIP unpacks to {_megabytes(declared)}, more than the limit of "
            f"{_megabytes(max_total_bytes)}",
        )
        return None
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = _entry_name(info)
        unsafe = _path_problem(name)
        if unsafe:
            result.add(None, info.filename, f"refused: the entry {unsafe}")
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            result.add(None, info.filename, "refused: the entry is a symbolic link")
            continue
        if info.is_dir() or _is_junk(name):
            continue
        if info.flag_bits & 0x1:
            result.add(None, name, "is encrypted; make the ZIP without a password")
            continue
        if name in entries:
            result.add(None, name, "appears twice in the ZIP")
            continue
        entries[name] = info
    return entries


def _find_manifest(entries: dict[str, zipfile.ZipInfo], result: StimulusSet) -> str | None:
    """Return the manifest's path: at the top, or in the one folder that holds everything."""
    if MANIFEST_NAME in entries:
        return MANIFEST_NAME
    candidates = [n for n in entries if n.rsplit("/", 1)[-1].lower() == MANIFEST_NAME]
    if len(candidates) == 1 and candidates[0].count("/") <= 1:
        return candidates[0]
    if candidates:
        listed = ", ".join(sorted(candidates))
        result.add(None, None, f"The ZIP holds several manifests ({listed}); keep one at the top")
    else:
        result.add(
            None, None, f"The ZIP has no {MANIFEST_NAME}; put it at the top, beside the images"
        )
    return None


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read one entry, never more than limit bytes, or raise _Unusable with the reason."""
    if info.file_size > limit:
        raise _Unusable(
            f"is {_megabytes(info.file_size)}, larger than the limit of {_megabytes(limit)}"
        )
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        OSError,
    ) as exc:
        raise _Unusable(f"could not be unpacked from the ZIP ({exc})") from None
    if len(data) != info.file_size:
        raise _Unusable("could not be unpacked from the ZIP (its size does not match)")
    return data


def _parse_manifest(
    raw: bytes, name: str, result: StimulusSet
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]] | None:
    """Return the manifest's columns and an iterator of its non-blank rows (header = row 1).

    The rows are read as they are checked, never all held at once: a 5 MiB manifest of short
    rows would otherwise be millions of dictionaries in memory.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[: exc.start].count(b"\n") + 1
        result.add(
            row,
            name,
            f"is not UTF-8 text (byte {raw[exc.start]:#04x}); save it as 'CSV UTF-8'",
        )
        return None
    # Checked after decoding: a file that is only a byte-order mark is empty too.
    if not text.strip():
        result.add(None, name, "is empty")
        return None
    first_line = text.splitlines()[0]
    # Spreadsheets in many locales save CSV with semicolons.
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except csv.Error as exc:
        result.add(None, name, f"is not a readable CSV file ({exc})")
        return None
    seen: set[str] = set()
    doubled: set[str] = set()
    for column in filter(None, header):
        (doubled if column in seen else seen).add(column)
    if doubled:
        result.add(1, name, f"has the column(s) {', '.join(sorted(doubled))} more than once")
        return None
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        found = ", ".join(filter(None, header[:50])) + (" …" if len(header) > 50 else "")
        result.add(
            1,
            name,
            f"is missing the column(s) {', '.join(missing)} "
            f"(it needs {', '.join(REQUIRED_COLUMNS)}; found {found})",
        )
        return None
    for column in header:
        if column and column not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            result.add(1, name, f"column '{column}' is not used", "warning")
    return header, _manifest_rows(reader, header, name, result)


def _manifest_rows(
    reader: Iterator[list[str]], header: list[str], name: str, result: StimulusSet
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield each non-blank row as (number, the used columns' values); say when there is none."""
    # Only the columns the set uses are read from each row, so a header of many unused
    # columns does not make every row cost as much as the header is wide.
    used = [(i, c) for i, c in enumerate(header) if c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    any_rows = False
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            any_rows = True
            if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header) :]):
                result.add(number, None, f"has {len(cells)} cells but the header has {len(header)}")
                continue
            yield number, {c: cells[i].strip() if i < len(cells) else "" for i, c in used}
    except csv.Error as exc:
        result.add(None, name, f"is not a readable CSV file ({exc})")
        return
    if not any_rows:
        result.add(None, name, "has a header but no rows")


class _SetReader:
    """Checks manifest rows one by one and builds the stimulus set."""

    def __init__(
        self,
        zf: zipfile.ZipFile,
        entries: dict[str, zipfile.ZipInfo],
        base: str,
        result: StimulusSet,
        existing_hashes: Collection[str],
        max_image_bytes: int,
        existing_headshots: Collection[tuple[str, str]] = (),
        max_pixels: int = MAX_ZIP_PIXELS,
        max_seconds: float | None = None,
    ) -> None:
        """Keep what every row check needs."""
        self.zf = zf
        self.entries = entries
        self.base = base
        self.result = result
        self.existing_hashes = existing_hashes
        self.max_image_bytes = max_image_bytes
        self.existing_headshots = set(existing_headshots)
        self.pixels_left = max_pixels
        self.max_pixels = max_pixels
        self.seconds = max_seconds
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.lower_names = {n.lower(): n for n in entries}
        self.rows_of_file: dict[str, int] = {}
        self.rows_of_hash: dict[str, tuple[int, str]] = {}
        # (identity, column) -> the value first given and its row.
        self.descriptors: dict[tuple[str, str], tuple[str, int]] = {}
        self.headshots: dict[str, set[str]] = {}

    def add(self, row: int, file: str | None, message: str, level: str = "error") -> None:
        """Record a problem of a row."""
        self.result.add(row, file, message, level)

    def row(self, number: int, cells: dict[str, str]) -> None:
        """Check one manifest row; add its identity and image when everything is right."""
        path = cells["file"].replace("\\", "/")
        errors_before = self.result.error_count
        code = self.identity(number, cells, path or None)
        role, source = self.role_source(number, cells, path or None)
        generator = cells["generator"]
        for column in ("generator", "file") + DESCRIPTORS:
            value = cells.get(column, "")
            if len(value) > FIELD_LIMITS[column]:
                self.add(
                    number,
                    path or None,
                    f"{column} is longer than {FIELD_LIMITS[column]} characters",
                )
        if role == "headshot" and source == "ai" and not generator:
            self.add(
                number,
                path or None,
                "generator is empty: name the AI model that made this headshot",
                "warning",
            )
        if code and role == "headshot" and source:
            self.headshots.setdefault(code, set()).add(source)
        image = self.image(number, path)
        if (
            image is not None
            and code
            and role
            and source
            and self.result.error_count == errors_before
        ):
            self.result.images.append(
                StimulusImage(code, role, source, generator, path, number, image)
            )

    def identity(self, number: int, cells: dict[str, str], file: str | None) -> str | None:
        """Check the identity code and descriptors of a row; return the code when valid."""
        code = cells["identity"]
        consent_text = cells.get("consent", "").lower()
        consent = CONSENT_VALUES.get(consent_text)
        if consent_text not in CONSENT_VALUES:
            self.add(number, file, f"consent must be yes or no, not '{cells['consent']}'")
        if not code:
            self.add(number, file, "identity is empty")
            return None
        try:
            validate_identity_code(code)
        except ValueError as exc:
            self.add(number, file, str(exc))
            return None
        person = self.result.identities.setdefault(code, StimulusIdentity(code, number))
        given = {column: cells.get(column, "") for column in DESCRIPTORS}
        if consent is not None:
            given["consent"] = consent_text
        for column, value in given.items():
            if not value:
                continue
            first_value, first_row = self.descriptors.setdefault((code, column), (value, number))
            if first_value.casefold() != value.casefold():
                self.add(
                    number,
                    file,
                    f"identity {code} has {column} '{value}' here "
                    f"but '{first_value}' in row {first_row}",
                )
            elif first_row == number:
                setattr(person, column, consent if column == "consent" else value)
        return code

    def role_source(self, number: int, cells: dict[str, str], file: str | None) -> tuple[str, str]:
        """Check a row's role and source; return them, or empty strings where invalid."""
        role, source = cells["role"].lower(), cells["source"].lower()
        if role not in ROLE_SOURCES:
            self.add(number, file, f"role '{cells['role']}' is unknown: use headshot or probe")
            role = ""
        if source not in ("real", "ai", "photo"):
            self.add(
                number,
                file,
                f"source '{cells['source']}' is unknown: "
                "use real or ai (headshots), photo (probes)",
            )
            return role, ""
        if role and source not in ROLE_SOURCES[role]:
            allowed = " or ".join(ROLE_SOURCES[role])
            self.add(number, file, f"a {role}'s source must be {allowed}, not '{source}'")
            return role, ""
        return role, source

    def image(self, number: int, path: str) -> ProcessedImage | None:
        """Find, read and process a row's image file; None when it cannot be used."""
        if not path:
            self.add(number, None, "file is empty")
            return None
        unsafe = _path_problem(path)
        if unsafe:
            self.add(number, path, f"the file path {unsafe}")
            return None
        full = unicodedata.normalize("NFC", self.base + path)
        info = self.entries.get(full)
        if info is None:
            near = self.lower_names.get(full.lower())
            hint = f" (the ZIP has '{near}': names are case-sensitive)" if near else ""
            self.add(number, path, f"is not in the ZIP{hint}")
            return None
        if full in self.rows_of_file:
            self.add(number, path, f"is listed twice (also in row {self.rows_of_file[full]})")
            return None
        self.rows_of_file[full] = number
        try:
            data = _read_entry(self.zf, info, self.max_image_bytes)
            self.spend_pixels(path, _header_size(data))
            processed = process_image(data, filename=path, max_bytes=self.max_image_bytes)
        except _Unusable as exc:
            self.add(number, path, str(exc))
            return None
        except ImageError as exc:
            self.add(number, path, exc.reason)
            return None
        if processed.sha256 in self.existing_hashes:
            self.add(number, path, "the same image is already in this study")
            return None
        if processed.sha256 in self.rows_of_hash:
            row, other = self.rows_of_hash[processed.sha256]
            self.add(number, path, f"is the same image as {other} (row {row})")
            return None
        self.rows_of_hash[processed.sha256] = (number, path)
        return processed

    def spend_pixels(self, path: str, size: tuple[int, int] | None) -> None:
        """Count an image's pixels against the set's budget before it is decoded."""
        if size is None:
            # No size in the header: Pillow refuses the file or reads its size on opening,
            # which process_image checks against the per-image limit.
            size = (0, 0)
        self.pixels_left -= size[0] * size[1]
        if self.pixels_left < 0:
            raise _OverBudget(
                f"The images of this ZIP add up to more than {_megapixels(self.max_pixels)} "
                f"(the limit for one upload; {path} is {size[0]}×{size[1]} pixels). Make the "
                "images smaller or split the set into several ZIPs: a later ZIP may add images "
                "to identities uploaded before."
            )

    def check_time(self) -> None:
        """Stop once the set has taken longer to check than one upload may."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise _OverBudget(
                "Checking this ZIP took longer than one upload may "
                f"({self.seconds:g} seconds), so nothing was imported. Make the images smaller "
                "or split the set into several ZIPs: a later ZIP may add images to identities "
                "uploaded before."
            )

    def finish(self, header: list[str], manifest: str) -> None:
        """Check what spans rows: headshots per identity, consent, unlisted files."""
        for code, person in self.result.identities.items():
            have = self.headshots.get(code, set())
            for source in HEADSHOT_SOURCES:
                if source not in have and (code, source) not in self.existing_headshots:
                    self.add(person.row, None, f"identity {code} has no {source} headshot")
        if "consent" not in header:
            self.result.add(
                1, manifest, "has no consent column: no image-use consent is recorded", "warning"
            )
        else:
            for code, person in self.result.identities.items():
                if person.consent is not True:
                    said = "says no" if person.consent is False else "is not recorded"
                    self.add(
                        person.row, None, f"identity {code}: image-use consent {said}", "warning"
                    )
        for name in self.entries:
            if name != manifest and name not in self.rows_of_file:
                self.result.add(
                    None,
                    name,
                    f"is in the ZIP but not in {MANIFEST_NAME}; it is ignored",
                    "warning",
                )


def read_stimulus_zip(
    fileobj: IO[bytes] | bytes | str,
    *,
    max_files: int = MAX_ZIP_FILES,
    max_total_bytes: int = MAX_ZIP_BYTES,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_ZIP_PIXELS,
    max_seconds: float | None = MAX_ZIP_SECONDS,
    existing_hashes: Collection[str] = (),
    existing_headshots: Collection[tuple[str, str]] = (),
) -> StimulusSet:
    """Read and check a stimulus set ZIP (manifest.csv plus images); write nothing.

    Never raises for bad content: every problem, including "not a ZIP", is in
    ``StimulusSet.problems`` and ``.ok`` says whether the set may be imported. The manifest
    sits at the top of the ZIP (or in the one folder that holds everything) and its file
    paths are relative to it. Entries with absolute paths, '..', or that are symbolic links
    are refused; the entry count and the declared unpacked size are checked before
    anything is unpacked, and every read is bounded. The images together may have at most
    ``max_pixels`` pixels (counted from each header before it is decoded) and the check may
    take ``max_seconds`` (checked between rows, so one image's decoding may run past it);
    past either, the set is refused with one problem naming the limit. ``existing_hashes``
    are the SHA-256 of images already in the study, to refuse them again;
    ``existing_headshots`` are its (identity code, source) headshots, which the ZIP need not
    repeat. The central directory is parsed before ``max_files`` can be checked, so the
    upload size must be bounded by the caller.
    """
    result = StimulusSet()
    if isinstance(fileobj, (bytes, bytearray)):
        fileobj = io.BytesIO(fileobj)
    try:
        zf = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, EOFError, OSError):
        result.add(None, None, "The upload is not a ZIP archive")
        return result
    with zf:
        entries = _zip_entries(zf, result, max_files, max_total_bytes)
        manifest = _find_manifest(entries, result) if entries is not None else None
        if entries is None or manifest is None:
            return result
        reader = _SetReader(
            zf,
            entries,
            manifest[: -len(MANIFEST_NAME)],
            result,
            existing_hashes,
            max_image_bytes,
            existing_headshots=existing_headshots,
            max_pixels=max_pixels,
            max_seconds=max_seconds,
        )
        try:
            raw = _read_entry(zf, entries[manifest], MAX_MANIFEST_BYTES)
        except _Unusable as exc:
            result.add(None, manifest, str(exc))
            return result
        parsed = _parse_manifest(raw, manifest, result)
        if parsed is None:
            return result
        header, rows = parsed
        checked = 0
        try:
            for number, cells in rows:
                if result.error_count >= MAX_ERRORS_CHECKED:
                    result.add(
                        None,
                        manifest,
                        f"checking stopped at row {number} after {result.error_count} "
                        "problems; fix those and upload the ZIP again",
                    )
                    return result
                reader.check_time()
                reader.row(number, cells)
                checked += 1
        except _OverBudget as exc:
            # One problem, first in the report: the rows' own problems are beside the point.
            result.images.clear()
            result.problems.insert(0, Problem(None, None, str(exc)))
            result.error_count += 1
            return result
        if checked:
            reader.finish(header, manifest)
    return result
