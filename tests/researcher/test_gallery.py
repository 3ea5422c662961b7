"""The stimulus gallery with many identities: pages of 24, search, a filter, and deletions that
come back to the page they started from."""

from __future__ import annotations

import hashlib
import re

import pytest
import sqlalchemy as sa

from survey.extensions import db
from survey.models import Identity, Image, Study, StudyMember
from survey.storage import key_for
from tests.helpers import sign_in
from tests.researcher.helpers import quick_researcher


def make_crowd(app, size: int):
    """Make a draft study of `size` identities (P001...); every seventh has no probe photo.
    Return its id and a client signed in as its owner."""
    owner = quick_researcher(app, "owner@example.org")
    with app.app_context():
        study = Study(title="Many faces", slug="many")
        db.session.add(study)
        db.session.add(StudyMember(study=study, researcher_id=owner, role="owner"))
        db.session.flush()
        for index in range(size):
            identity = Identity(
                study=study,
                code=f"P{index + 1:03d}",
                gender=("woman", "man")[index % 2],
                age_band="30-44",
            )
            db.session.add(identity)
            for role, source in (("headshot", "real"), ("headshot", "ai"), ("probe", "photo")):
                if source == "photo" and index % 7 == 0:
                    continue
                sha = hashlib.sha256(f"{index}-{source}".encode()).hexdigest()
                db.session.add(
                    Image(
                        study=study,
                        identity=identity,
                        role=role,
                        source=source,
                        sha256=sha,
                        width=60,
                        height=80,
                        content_type="image/jpeg",
                        byte_size=1,
                        storage_key=key_for(study.id, sha, "jpg", "original"),
                        display_key=key_for(study.id, sha, "jpg", "display"),
                    )
                )
        db.session.commit()
        study_id = study.id
    client = app.test_client()
    sign_in(client, app, owner)
    return study_id, client


@pytest.fixture
def crowd(app):
    """A draft study of 60 identities (P001-P060); every seventh has no probe photo."""
    return make_crowd(app, 60)


def test_200_identities_come_in_pages_found_by_search_with_deleting_tucked_away(app):
    study_id, client = make_crowd(app, 200)
    url = f"/r/studies/{study_id}/stimuli"
    first = client.get(url).get_data(as_text=True)
    assert codes(first) == [f"P{i:03d}" for i in range(1, 25)]
    assert re.search(r"200 identities,\s+571 images\.", first) and "Page 1 of 9" in first
    assert first.count("<img ") == 24 * 3 - 4  # P001, P008, P015, P022 have no probe photo
    last = client.get(f"{url}?page=9").get_data(as_text=True)
    assert codes(last) == [f"P{i:03d}" for i in range(193, 201)]
    assert f'href="{url}?page=8#gallery"' in last and "Next page" not in last
    found = client.get(f"{url}?q=P15").get_data(as_text=True)
    assert codes(found) == [f"P{i:03d}" for i in range(150, 160)]
    assert "10 of 200 identities match." in found
    # On a page, each identity's deleting sits in its closed details, as quiet links: nothing
    # that deletes is a button, and nothing is styled as a danger or a primary action.
    sections = re.findall(r'<section class="identity[^"]*"(.*?)</section>', first, re.S)
    assert len(sections) == 24
    for section in sections:
        before, details = section.split('<details class="identity-details">')
        assert "Delete" not in before and "<button" not in section
        deletes = re.findall(r'<a class="([^"]*)" href="[^"]*/delete[^"]*">([^<]*)</a>', details)
        assert [c for c, _ in deletes] == ["quiet-danger"] * len(deletes) and len(deletes) >= 3
        assert deletes[-1][1].startswith("Delete P") and "</details>" in details
    for button in re.findall(r"<button[^>]*>.*?</button>", first, re.S):
        assert "Delete" not in button, button
    classes = {c for names in re.findall(r'class="([^"]*)"', first) for c in names.split()}
    assert not {"danger", "primary"} & classes


def codes(page: str) -> list[str]:
    """Return the identity codes the gallery shows, in order."""
    return re.findall(r'<h3 id="identity-\d+">(P\d{3})</h3>', page)


def test_the_gallery_shows_24_identities_a_page(crowd):
    study_id, client = crowd
    first = client.get(f"/r/studies/{study_id}/stimuli").get_data(as_text=True)
    assert codes(first) == [f"P{i:03d}" for i in range(1, 25)]
    assert re.search(r"60 identities,\s+171 images\.", first) and "Page 1 of 3" in first
    assert f'href="/r/studies/{study_id}/stimuli?page=2#gallery"' in first
    last = client.get(f"/r/studies/{study_id}/stimuli?page=3").get_data(as_text=True)
    assert codes(last) == [f"P{i:03d}" for i in range(49, 61)]
    # A page past the end shows the last one; a page that is no number, the first.
    assert codes(client.get(f"/r/studies/{study_id}/stimuli?page=9").get_data(as_text=True)) == (
        codes(last)
    )
    assert codes(client.get(f"/r/studies/{study_id}/stimuli?page=x").get_data(as_text=True))[0] == (
        "P001"
    )


def test_the_gallery_counts_one_identity_in_the_singular(app, crowd):
    study_id, client = crowd
    found = client.get(f"/r/studies/{study_id}/stimuli?q=P060").get_data(as_text=True)
    assert "1 of 60 identities matches." in found
    several = client.get(f"/r/studies/{study_id}/stimuli?q=P05").get_data(as_text=True)
    assert "10 of 60 identities match." in several
    with app.app_context():
        gone = sa.select(Identity.id).where(Identity.study_id == study_id, Identity.code > "P049")
        db.session.execute(sa.delete(Image).where(Image.identity_id.in_(gone)))
        db.session.execute(sa.delete(Identity).where(Identity.id.in_(gone)))
        db.session.commit()
    last = client.get(f"/r/studies/{study_id}/stimuli?page=3").get_data(as_text=True)
    assert codes(last) == ["P049"]
    assert "Page 3 of 3, 1 identity shown." in last


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=p05", [f"P05{i}" for i in range(10)]),
        ("q=P060", ["P060"]),
        ("q=%25", []),
        ("q=_", []),
        ("q=WOMAN&page=2", [f"P{i:03d}" for i in range(49, 60, 2)]),
        # A descriptor matches from the start of a word: "man" is not found in "woman".
        ("q=man", [f"P{i:03d}" for i in range(2, 49, 2)]),
        ("q=MAN&page=2", [f"P{i:03d}" for i in range(50, 61, 2)]),
        ("q=30", [f"P{i:03d}" for i in range(1, 25)]),
        ("lacking=1", [f"P{i:03d}" for i in range(1, 61, 7)]),
        ("q=P00&lacking=1", ["P001", "P008"]),
    ],
)
def test_search_and_filter_find_identities(crowd, query, expected):
    study_id, client = crowd
    response = client.get(f"/r/studies/{study_id}/stimuli?{query}")
    assert response.status_code == 200
    assert codes(response.get_data(as_text=True)) == expected


def test_a_deletion_from_a_later_page_comes_back_to_it(app, crowd):
    study_id, client = crowd
    page = client.get(f"/r/studies/{study_id}/stimuli?q=P0&page=2").get_data(as_text=True)
    link = re.search(
        r'href="(/r/studies/\d+/stimuli/identities/\d+/delete\?back=[^"]+)"', page
    ).group(1)
    asked = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    back = re.search(r'name="back" value="([^"]+)"', asked).group(1).replace("&amp;", "&")
    assert back == f"/r/studies/{study_id}/stimuli?q=P0&page=2"
    identity_id = int(re.search(r"identities/(\d+)/delete", link).group(1))
    done = client.post(link.split("?")[0], data={"back": back})
    assert done.status_code == 302 and done.headers["Location"].endswith(back)
    with app.app_context():
        assert db.session.get(Identity, identity_id) is None
    # A back address elsewhere is not followed.
    other = client.post(
        re.sub(r"identities/\d+", f"identities/{identity_id + 1}", link.split("?")[0]),
        data={"back": "https://example.org/"},
    )
    assert other.headers["Location"].endswith(f"/r/studies/{study_id}/stimuli")
