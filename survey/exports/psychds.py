"""The psych-DS ZIP: dataset_description.json, the tables under data/ and the codebook."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from survey.exports.codebook import codebook, codebook_csv, codebook_json
from survey.exports.tables import (
    _study,
    identities_csv,
    participants_csv,
    stimuli_csv,
    trials_csv,
)


def psychds_label(slug: str) -> str:
    """Return the slug as a psych-DS keyword value: letters and digits only."""
    return re.sub(r"[^A-Za-z0-9]", "", slug) or "study"


def psychds_names(slug: str) -> dict[str, str]:
    """Return the psych-DS path of each table: data/study-<slug>_data.csv and the others."""
    label = psychds_label(slug)
    return {
        "trials.csv": f"data/study-{label}_data.csv",
        "participants.csv": f"data/study-{label}_table-participants_data.csv",
        "stimuli.csv": f"data/study-{label}_table-stimuli_data.csv",
        "identities.csv": f"data/study-{label}_table-identities_data.csv",
    }


def dataset_description(study_id: int, include_recruitment: bool = False) -> dict[str, Any]:
    """Return the psych-DS dataset_description.json (JSON-LD, schema.org Dataset)."""
    study = _study(study_id)
    seen: dict[str, dict[str, str]] = {}
    for row in codebook(study_id, include_recruitment):
        entry = seen.setdefault(
            row["name"],
            {
                "@type": "PropertyValue",
                "name": row["name"],
                "description": row["description"],
            },
        )
        if row["file"] != "trials.csv" and entry["description"] != row["description"]:
            entry["description"] += f" ({row['file']}: {row['description']})"
    # Shared with the data: the participants' title and the public summary, never the team's
    # internal name or private description.
    summary = (study.public_summary or "").strip()
    description = summary or f"Data of the Likeness study {study.title}."
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "name": study.title,
        "description": description,
        "identifier": study.slug,
        "variableMeasured": list(seen.values()),
    }


class _Drain(io.RawIOBase):
    """A write-only stream that keeps bytes until drained; zipfile writes it without seeking."""

    def __init__(self) -> None:
        """Start empty at position 0."""
        super().__init__()
        self.chunks = bytearray()
        self.position = 0

    def writable(self) -> bool:
        """Tell zipfile it may write."""
        return True

    def write(self, data) -> int:
        """Keep the bytes and advance the position."""
        self.chunks += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        """Return how many bytes were written in all."""
        return self.position

    def drain(self) -> bytes:
        """Return the bytes kept since the last drain."""
        data = bytes(self.chunks)
        self.chunks.clear()
        return data


def psychds_zip(study_id: int, include_recruitment: bool = False) -> Iterator[bytes]:
    """Stream a psych-DS ZIP: dataset_description.json, data/ tables and the codebook.

    The ZIP is written through zipfile into a small in-memory buffer that is drained after
    every chunk of rows (entries carry data descriptors, so nothing needs seeking back), which
    keeps memory bounded by one chunk whatever the size of the study.
    """
    study = _study(study_id)
    names = psychds_names(study.slug)
    sink = _Drain()
    tables = {
        names["trials.csv"]: trials_csv(study_id),
        names["participants.csv"]: participants_csv(study_id, include_recruitment),
        names["stimuli.csv"]: stimuli_csv(study_id),
        names["identities.csv"]: identities_csv(study_id),
        "codebook.csv": codebook_csv(study_id, include_recruitment),
    }
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        description = dataset_description(study_id, include_recruitment)
        archive.writestr(
            "dataset_description.json", json.dumps(description, indent=2, ensure_ascii=False)
        )
        archive.writestr("codebook.json", codebook_json(study_id, include_recruitment))
        yield sink.drain()
        for name, chunks in tables.items():
            with archive.open(name, "w", force_zip64=True) as entry:
                for chunk in chunks:
                    entry.write(chunk.encode("utf-8"))
                    yield sink.drain()
    yield sink.drain()


def psychds_filename(slug: str) -> str:
    """Return the download name of the psych-DS ZIP."""
    return f"study-{psychds_label(slug)}_psychds.zip"
