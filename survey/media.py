"""Storing processed images for a study: the one path used by uploads and the demo seed."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from survey.extensions import db
from survey.models import Identity, Image, Study
from survey.stimuli.images import ProcessedImage
from survey.storage import LocalStorage, Storage, key_for


def storage() -> Storage:
    """Return the image storage configured for this app (a folder by default)."""
    return LocalStorage(current_app.config["MEDIA_DIR"])


def store_image(
    study: Study,
    identity: Identity,
    processed: ProcessedImage,
    *,
    role: str,
    source: str,
    generator: str = "",
    filename: str = "",
) -> Image:
    """Write the image's files and add its row; an image already in the study is reused."""
    existing = db.session.scalar(
        sa.select(Image).where(Image.study_id == study.id, Image.sha256 == processed.sha256)
    )
    if existing is not None:
        return existing
    store = storage()
    original_key = key_for(study.id, processed.sha256, processed.ext, "original")
    display_key = key_for(study.id, processed.sha256, processed.display_ext, "display")
    store.put(original_key, processed.data, processed.content_type)
    store.put(display_key, processed.display, processed.display_content_type)
    image = Image(
        study=study,
        identity=identity,
        role=role,
        source=source,
        generator=generator,
        original_filename=filename,
        sha256=processed.sha256,
        width=processed.width,
        height=processed.height,
        content_type=processed.content_type,
        byte_size=processed.byte_size,
        storage_key=original_key,
        display_key=display_key,
    )
    db.session.add(image)
    return image


def delete_files(keys: list[str]) -> None:
    """Remove stored files, ignoring ones already gone (used after a rolled-back import)."""
    store = storage()
    for key in keys:
        if store.exists(key):
            store.delete(key)
