"""Drawn demo faces: deterministic, distinct people, one person across the three variants."""

from __future__ import annotations

import hashlib
import io
import statistics

import pytest
from PIL import Image, ImageChops, ImageStat

from survey.demo_faces import VARIANTS, face_for, render
from survey.stimuli.images import process_image

N_DEMO = 8


def decoded(data: bytes) -> Image.Image:
    """Decode a rendered JPEG."""
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    return im.convert("RGB")


def face_colour(im: Image.Image) -> tuple[float, ...]:
    """Return the median colour of the middle of a headshot, which is mostly skin."""
    w, h = im.size
    return tuple(
        ImageStat.Stat(im.crop((int(w * 0.42), int(h * 0.36), int(w * 0.58), int(h * 0.48)))).median
    )


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Return the mean absolute difference of two images over all channels (0-255)."""
    return statistics.fmean(ImageStat.Stat(ImageChops.difference(a, b)).mean)


@pytest.fixture(scope="module")
def renders() -> dict[tuple[int, str], bytes]:
    """Render every variant of the demo identities once."""
    return {(i, v): render(i, v) for i in range(N_DEMO) for v in VARIANTS}


def test_rendering_is_deterministic(renders):
    for i in (0, 5):
        for variant in VARIANTS:
            assert render(i, variant) == renders[i, variant]
    assert face_for(3) == face_for(3)


def test_jpeg_of_the_requested_size(renders):
    assert decoded(renders[0, "real"]).size == (480, 600)
    assert decoded(render(2, "probe", size=(240, 320))).size == (240, 320)


def test_identities_are_distinct(renders):
    for variant in VARIANTS:
        hashes = {hashlib.sha256(renders[i, variant]).hexdigest() for i in range(N_DEMO)}
        assert len(hashes) == N_DEMO
    images = [decoded(renders[i, "real"]) for i in range(N_DEMO)]
    for i in range(N_DEMO):
        for j in range(i + 1, N_DEMO):
            assert mean_difference(images[i], images[j]) > 8, (i, j)


def test_identities_differ_in_look():
    faces = [face_for(i) for i in range(N_DEMO)]
    assert len({f.skin for f in faces}) == N_DEMO
    assert len({(f.hair, f.hair_style) for f in faces}) == N_DEMO
    assert len({f.eyes for f in faces}) >= 5
    assert len({f.squareness for f in faces}) >= 4


def test_variants_differ_but_show_one_person(renders):
    for i in range(N_DEMO):
        real, ai, probe = (decoded(renders[i, v]) for v in VARIANTS)
        assert mean_difference(real, ai) > 3
        assert mean_difference(real, probe) > 15
        skin = face_for(i).skin
        for headshot in (real, ai):
            colour = face_colour(headshot)
            assert all(abs(m - s) <= 25 for m, s in zip(colour, skin, strict=True)), (
                i,
                colour,
                skin,
            )


def test_skin_tones_tell_identities_apart(renders):
    colours = [face_colour(decoded(renders[i, "real"])) for i in range(N_DEMO)]
    for i in range(N_DEMO):
        for j in range(i + 1, N_DEMO):
            assert max(abs(a - b) for a, b in zip(colours[i], colours[j], strict=True)) > 10, (i, j)


def test_renders_pass_image_validation(renders):
    for (i, variant), data in renders.items():
        processed = process_image(data, filename=f"P{i:03d}-{variant}.jpg")
        assert (processed.width, processed.height) == (480, 600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, "photo"), "variant must be one of real, ai, probe, not 'photo'"),
        ((-1, "real"), "index must be a non-negative integer, not -1"),
        (("1", "real"), "index must be a non-negative integer, not '1'"),
        ((0, "real", (32, 600)), "size must be at least 64×64 pixels"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        render(*args)
