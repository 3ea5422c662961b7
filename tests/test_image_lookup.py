"""Participant images: each worker looks an image id up once, and a deleted image stays gone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.media import storage
from survey.models import Image


def _fetch(client, public_id: str) -> tuple[int, bytes]:
    """GET an image and return its status and body (closing the streamed file)."""
    with client.get(f"/img/{public_id}") as response:
        return response.status_code, response.data


def _first_image(app) -> tuple[str, str]:
    """Return the public id and display key of the demo's first image."""
    with app.app_context():
        image = db.session.scalars(sa.select(Image).order_by(Image.id)).first()
        return image.public_id, image.display_key


@pytest.mark.slow
def test_an_image_id_is_looked_up_once_per_worker(app, client, demo):
    public_id, _key = _first_image(app)
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(conn, cursor, statement, *args):
        """Note every statement sent to the database."""
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        first = _fetch(client, public_id)
        looked_up = len(statements)
        second = _fetch(client, public_id)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert first[0] == 200
    assert second == first
    assert any("display_key" in s for s in statements[:looked_up])
    assert len(statements) == looked_up


@pytest.mark.slow
def test_a_deleted_image_is_not_served_though_it_was_before(app, client, demo):
    public_id, key = _first_image(app)
    assert _fetch(client, public_id)[0] == 200
    with app.app_context():
        # What deleting an image does: its row and its stored files go.
        db.session.execute(sa.delete(Image).where(Image.public_id == public_id))
        db.session.commit()
        storage().delete(key)
    assert _fetch(client, public_id)[0] == 404
