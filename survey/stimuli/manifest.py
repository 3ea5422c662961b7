"""Stimulus sets: read a ZIP of images with its manifest.csv, and report every problem."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import stat
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO

from survey.stimuli.images import (
    MAX_IMAGE_BYTES,
    MIB,
    ImageError,
    ProcessedImage,
    header_size,
    megabytes,
    megapixels,
    process_image,
)

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

IDENTITY_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def validate_identity_code(code: str) -> str:
    """Return the identity code when it is 1-32 letters, digits, '-' or '_'."""
    if not isinstance(code, str) or not IDENTITY_CODE_RE.fullmatch(code):
        raise ValueError(
            f"identity code {code!r} must be 1 to 32 letters, digits, '-' or '_' (e.g. P001)"
        )
    return code


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
            f"The ZIP unpacks to {megabytes(declared)}, more than the limit of "
            f"{megabytes(max_total_bytes)}",
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
            f"is {megabytes(info.file_size)}, larger than the limit of {megabytes(limit)}"
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
            self.spend_pixels(path, header_size(data))
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
                f"The images of this ZIP add up to more than {megapixels(self.max_pixels)} "
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
