"""Image validation and cleaning, and stimulus-set ZIPs with their validation report."""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import time
import zipfile
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, ImageDraw, PngImagePlugin

from survey.stimuli.images import ImageError, ProcessedImage, process_image
from survey.stimuli.manifest import Problem, read_stimulus_zip, validate_identity_code

# --- building test images --------------------------------------------------------------------


def picture(seed: int = 0, size: tuple[int, int] = (120, 160), mode: str = "RGB") -> Image.Image:
    """Return a small image whose content depends on seed (so hashes differ)."""
    im = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(im)
    w, h = size
    draw.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.7), fill=(230, 190, 160))
    draw.rectangle((0, h * 0.8, w, h), fill=(seed % 256, 40, 90))
    return im.convert(mode) if mode != "RGB" else im


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    """Return the image encoded in a format."""
    out = io.BytesIO()
    im.save(out, format=fmt, **options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """Return a PNG whose header claims a size but whose pixels are a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        """Return one PNG chunk with its CRC."""
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """Return a small JPEG whose frame header claims another size."""
    data = bytearray(encode(picture(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_claiming(width: int, height: int) -> bytes:
    """Return an extended-format WebP header that claims a canvas size."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def animated(fmt: str) -> bytes:
    """Return a two-frame animation in a format (GIF, WEBP or PNG)."""
    frames = [picture(1), picture(2)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def with_gps_exif(fmt: str) -> bytes:
    """Return an image carrying EXIF with a GPS position, a camera and a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.ImageDescription] = "home"
    exif[ExifTags.Base.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (51.0, 30.0, 0.0),
        ExifTags.GPS.GPSLongitudeRef: "W",
        ExifTags.GPS.GPSLongitude: (0.0, 7.0, 0.0),
    }
    return encode(picture(5), fmt, exif=exif)


def has_metadata(data: bytes) -> list[str]:
    """List the kinds of metadata an encoded image still carries."""
    im = Image.open(io.BytesIO(data))
    im.load()
    found = [
        key
        for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment")
        if im.info.get(key)
    ]
    if len(im.getexif()):
        found.append("getexif")
    if getattr(im, "text", None):
        found.append("text")
    for marker in (b"Exif\x00\x00", b"GPS", b"PhoneMaker", b"http://ns.adobe.com/xap"):
        if marker in data:
            found.append(repr(marker))
    return found


# --- process_image: good images ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [("JPEG", "image/jpeg", "jpg"), ("PNG", "image/png", "png"), ("WEBP", "image/webp", "webp")],
)
def test_accepts_jpeg_png_webp_and_keeps_the_format(fmt, content_type, ext):
    result = process_image(encode(picture(), fmt), filename=f"x.{ext}")
    assert (result.content_type, result.ext) == (content_type, ext)
    assert (result.width, result.height) == (120, 160)
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    assert result.byte_size == len(result.data)
    stored = Image.open(io.BytesIO(result.data))
    assert stored.format == fmt and stored.size == (120, 160)
    display = Image.open(io.BytesIO(result.display))
    assert display.format == "JPEG" and result.display_content_type == "image/jpeg"
    assert display.size == (result.display_width, result.display_height) == (120, 160)
    assert result.display_ext == "jpg"


def test_png_named_jpg_is_accepted_as_png():
    result = process_image(encode(picture(), "PNG"), filename="P001_real.jpg")
    assert (result.content_type, result.ext) == ("image/png", "png")


@pytest.mark.parametrize(
    ("size", "display_max", "expected"),
    [
        ((2000, 1000), (800, 1000), (800, 400)),
        ((1000, 3000), (800, 1000), (333, 1000)),
        ((300, 200), (800, 1000), (300, 200)),  # never enlarged
        ((640, 480), (320, 320), (320, 240)),
    ],
)
def test_display_copy_fits_the_box(size, display_max, expected):
    result = process_image(encode(picture(size=size), "JPEG"), display_max=display_max)
    assert (result.width, result.height) == size
    assert Image.open(io.BytesIO(result.display)).size == expected


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_and_other_metadata_are_stripped(fmt):
    data = with_gps_exif(fmt)
    assert "getexif" in has_metadata(data)  # the input really carries it
    result = process_image(data, filename="with-gps")
    assert has_metadata(result.data) == []
    assert has_metadata(result.display) == []


def test_png_text_xmp_and_icc_are_stripped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Somebody")
    info.add_itxt(
        "XML:com.adobe.xmp",
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'>http://ns.adobe.com/xap</x:xmpmeta>",
    )
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(picture(), "PNG", pnginfo=info, icc_profile=srgb)
    assert Image.open(io.BytesIO(data)).text and Image.open(io.BytesIO(data)).info["icc_profile"]
    result = process_image(data)
    assert has_metadata(result.data) == []


def test_jpeg_with_a_broken_icc_profile_is_used_without_it():
    result = process_image(encode(picture(), "JPEG", icc_profile=b"not a profile" * 20))
    assert has_metadata(result.data) == []


def test_same_picture_with_different_metadata_has_the_same_hash():
    plain = encode(picture(5), "JPEG")
    assert plain != with_gps_exif("JPEG")
    assert process_image(plain).sha256 == process_image(with_gps_exif("JPEG")).sha256


def test_processing_is_deterministic():
    data = encode(picture(3), "WEBP")
    assert process_image(data) == process_image(data)


def test_exif_orientation_6_comes_out_rotated():
    # Stored sideways: 200 wide, 100 tall, red on the left half and blue on the right.
    im = Image.new("RGB", (200, 100), (255, 0, 0))
    ImageDraw.Draw(im).rectangle((100, 0, 200, 100), fill=(0, 0, 255))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90° clockwise
    result = process_image(encode(im, "JPEG", exif=exif, quality=95))
    assert (result.width, result.height) == (100, 200)
    upright = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert upright.size == (100, 200)
    top, bottom = upright.getpixel((50, 40)), upright.getpixel((50, 160))
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert Image.open(io.BytesIO(result.data)).getexif().get(ExifTags.Base.Orientation) is None


def test_transparent_png_keeps_alpha_and_gets_a_webp_display():
    im = picture(mode="RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    result = process_image(encode(im, "PNG"))
    assert Image.open(io.BytesIO(result.data)).mode == "RGBA"
    assert result.display_content_type == "image/webp" and result.display_ext == "webp"
    assert Image.open(io.BytesIO(result.display)).format == "WEBP"


@pytest.mark.slow
def test_a_large_transparent_png_gets_a_display_copy_within_the_display_size():
    """Reduced first (no full-size premultiplied copy), then fitted: size and alpha kept."""
    im = picture(size=(3600, 4800), mode="RGBA")
    im.putpixel((0, 0), (0, 0, 0, 0))
    result = process_image(encode(im, "PNG"))
    display = Image.open(io.BytesIO(result.display))
    assert (display.width, display.height) == (750, 1000) and display.mode == "RGBA"
    assert display.getpixel((375, 300))[:3] == pytest.approx((230, 190, 160), abs=3)


def test_opaque_alpha_channel_is_dropped():
    result = process_image(encode(picture(mode="RGBA"), "PNG"))
    assert Image.open(io.BytesIO(result.data)).mode == "RGB"
    assert result.display_content_type == "image/jpeg"


def test_palette_png_with_transparency_becomes_rgba():
    im = picture().convert("P")
    result = process_image(encode(im, "PNG", transparency=0))
    assert Image.open(io.BytesIO(result.data)).mode == "RGBA"


def test_cmyk_jpeg_becomes_rgb():
    result = process_image(encode(picture(mode="CMYK"), "JPEG"))
    assert Image.open(io.BytesIO(result.data)).mode == "RGB"


def test_16_bit_greyscale_is_scaled_not_clipped():
    result = process_image(encode(Image.new("I;16", (80, 80), 40000), "PNG"))
    stored = Image.open(io.BytesIO(result.data))
    assert stored.mode == "L"
    assert stored.getpixel((10, 10)) == pytest.approx(40000 / 257, abs=1)


# --- process_image: refused images ------------------------------------------------------------


def truncated_jpeg() -> bytes:
    """Return the first half of a JPEG."""
    data = encode(picture(size=(400, 400)), "JPEG")
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    """Return a PNG whose pixel data is garbage."""
    data = bytearray(encode(picture(size=(200, 200)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 10 : idat + 60] = b"\x00" * 50
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (
            b"Dear participant, this is not a photo.\n" * 20,
            "P001_real.jpg",
            "is not a JPEG, PNG or WebP image",
        ),
        (b"", "empty.jpg", "is empty"),
        (truncated_jpeg(), "half.jpg", "is truncated or corrupt"),
        (corrupt_png(), "bad.png", "is truncated or corrupt"),
        # Cut off inside the header, before the size (found by the upload fuzzer).
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cut.png", "could not be read"),
        (animated("GIF"), "moving.gif", "is a GIF file"),
        (animated("WEBP"), "moving.webp", "is animated"),
        (animated("PNG"), "moving.png", "is animated"),
        (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "IMG_0001.HEIC", "is a HEIC/AVIF file"),
        (encode(picture(), "BMP"), "old.bmp", "is a BMP file"),
        (encode(picture(size=(40, 300)), "PNG"), "thin.png", "each side must be at least 64"),
        (png_header_only(20000, 20000), "huge.png", "is 20000×20000 pixels"),
        (jpeg_claiming(20000, 20000), "huge.jpg", "is 20000×20000 pixels"),
        (webp_claiming(15000, 15000), "huge.webp", "is 15000×15000 pixels"),
    ],
    ids=[
        "text-named-jpg",
        "empty",
        "truncated-jpeg",
        "corrupt-png",
        "png-cut-in-header",
        "animated-gif",
        "animated-webp",
        "animated-png",
        "heic",
        "bmp",
        "too-small",
        "png-bomb",
        "jpeg-bomb",
        "webp-bomb",
    ],
)
def test_refused_images_name_the_file_and_the_reason(data, filename, message):
    with pytest.raises(ImageError) as caught:
        process_image(data, filename=filename)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{filename}: ")
    assert caught.value.filename == filename and message in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_pixel_bomb_is_refused_from_the_header_without_decoding():
    # 400 megapixels of 1-bit data would take 50 MB and seconds to decode; the header says enough.
    start = time.perf_counter()
    with pytest.raises(ImageError, match="more than the limit of 40.0 megapixels"):
        process_image(png_header_only(20000, 20000), filename="bomb.png")
    assert time.perf_counter() - start < 0.5


def test_pillow_bomb_warning_is_an_image_error_not_a_warning():
    # 100 megapixels passes a raised max_pixels but trips Pillow's own guard (89 megapixels).
    with pytest.raises(ImageError, match="too large to open safely"):
        process_image(png_header_only(10000, 10000), filename="big.png", max_pixels=200_000_000)


def test_limits_are_configurable():
    data = encode(picture(size=(200, 300)), "PNG")
    with pytest.raises(ImageError, match="more than the limit of 0.0 megapixels"):
        process_image(data, max_pixels=10_000)
    with pytest.raises(ImageError, match="larger than the limit"):
        process_image(data, max_bytes=100)
    with pytest.raises(ImageError, match="at least 250 pixels"):
        process_image(data, min_side=250)


def test_unnamed_file_is_called_the_image():
    with pytest.raises(ImageError, match="^The image: is empty$"):
        process_image(b"")


def test_data_must_be_bytes():
    with pytest.raises(TypeError, match="must be bytes"):
        process_image("not bytes", filename="x.jpg")  # type: ignore[arg-type]


# --- identity codes ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["P001", "a", "x" * 32, "face_01-b", "007"])
def test_valid_identity_codes(code):
    assert validate_identity_code(code) == code


@pytest.mark.parametrize(
    "code", ["", "x" * 33, "P 001", "P/001", "Pé01", " P001", "P.001", None, 7]
)
def test_invalid_identity_codes_name_the_value(code):
    with pytest.raises(ValueError, match="identity code") as caught:
        validate_identity_code(code)  # type: ignore[arg-type]
    assert repr(code) in str(caught.value)


# --- stimulus ZIPs --------------------------------------------------------------------------------

HEADER = "identity,role,source,file,generator,age_band,gender,ethnicity,consent"


def make_zip(
    files: dict[str, bytes | str], *, infos: list[tuple[zipfile.ZipInfo, bytes]] = ()
) -> bytes:
    """Return a ZIP of the files (str contents are written as UTF-8) plus raw entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content.encode() if isinstance(content, str) else content)
        for info, content in infos:
            zf.writestr(info, content)
    return out.getvalue()


def good_set(n_identities: int = 2) -> dict[str, bytes | str]:
    """Return the files of a valid set: real, ai and probe for each identity."""
    files: dict[str, bytes | str] = {}
    rows = [HEADER]
    for i in range(n_identities):
        code = f"P{i + 1:03d}"
        gender = "woman" if i % 2 == 0 else "man"
        for k, (role, source, generator) in enumerate(
            [
                ("headshot", "real", "Canon R5"),
                ("headshot", "ai", "HeadshotGen 2"),
                ("probe", "photo", "phone"),
            ]
        ):
            name = f"{code}_{source}.jpg"
            files[name] = encode(picture(i * 3 + k), "JPEG")
            rows.append(f"{code},{role},{source},{name},{generator},30-44,{gender},,yes")
    files["manifest.csv"] = "\n".join(rows) + "\n"
    return files


def messages(result) -> list[str]:
    """Return the problems as strings, for readable assertions."""
    return [str(p) for p in result.problems]


def test_valid_set_reads_identities_and_images():
    result = read_stimulus_zip(io.BytesIO(make_zip(good_set())))
    assert result.ok and result.problems == []
    assert list(result.identities) == ["P001", "P002"]
    person = result.identities["P002"]
    assert (person.gender, person.age_band, person.consent_recorded, person.row) == (
        "man",
        "30-44",
        True,
        5,
    )
    assert [(im.identity, im.role, im.source, im.row) for im in result.images] == [
        ("P001", "headshot", "real", 2),
        ("P001", "headshot", "ai", 3),
        ("P001", "probe", "photo", 4),
        ("P002", "headshot", "real", 5),
        ("P002", "headshot", "ai", 6),
        ("P002", "probe", "photo", 7),
    ]
    ai = result.images[1]
    assert ai.generator == "HeadshotGen 2" and ai.original_filename == "P001_ai.jpg"
    assert isinstance(ai.image, ProcessedImage) and ai.image.content_type == "image/jpeg"


def test_bytes_and_paths_are_accepted(tmp_path):
    data = make_zip(good_set(1))
    path = tmp_path / "set.zip"
    path.write_bytes(data)
    assert read_stimulus_zip(data).ok
    assert read_stimulus_zip(str(path)).ok


def test_set_inside_one_folder_with_mac_clutter_is_read():
    files = {f"my set/{name}": content for name, content in good_set().items()}
    files["__MACOSX/my set/._P001_real.jpg"] = b"\x00\x05\x16\x07"
    files["my set/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    result = read_stimulus_zip(make_zip(files))
    assert result.ok and result.problems == []
    assert len(result.images) == 6


def test_semicolons_bom_blank_rows_and_letter_case_are_understood():
    files = good_set(1)
    lines = files["manifest.csv"].splitlines()
    header = lines[0].replace(",", ";").upper()
    body = [line.replace(",", ";").replace("headshot", "Headshot") for line in lines[1:]]
    files["manifest.csv"] = (
        "\ufeff" + "\r\n".join([header, body[0], ";;;;", body[1], body[2]]) + "\r\n"
    )
    result = read_stimulus_zip(make_zip(files))
    assert result.ok, messages(result)
    # The blank line is row 3 of the sheet; rows keep the sheet's numbers.
    assert [im.row for im in result.images] == [2, 4, 5]


def test_unsafe_entries_are_refused():
    files = good_set(1)
    link = zipfile.ZipInfo("P001_link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    result = read_stimulus_zip(
        make_zip(
            files,
            infos=[
                (zipfile.ZipInfo("../evil.jpg"), b"x"),
                (zipfile.ZipInfo("/etc/cron.d/evil.jpg"), b"x"),
                (zipfile.ZipInfo("..\\..\\evil.jpg"), b"x"),
                (zipfile.ZipInfo("C:/evil.jpg"), b"x"),
                (link, b"/etc/passwd"),
            ],
        )
    )
    assert not result.ok
    refused = {p.file: p.message for p in result.errors}
    assert "leading outside" in refused["../evil.jpg"] or "'..'" in refused["../evil.jpg"]
    assert "absolute path" in refused["/etc/cron.d/evil.jpg"]
    assert "'..'" in refused["..\\..\\evil.jpg"]
    assert "absolute path" in refused["C:/evil.jpg"]
    assert "symbolic link" in refused["P001_link.jpg"]
    assert all(p.row is None for p in result.errors)
    assert len(result.images) == 3  # the rest of the set was still checked


@pytest.mark.parametrize("path", ["../P001_real.jpg", "/P001_real.jpg", "..\\P001_real.jpg"])
def test_manifest_paths_may_not_leave_the_zip(path):
    files = good_set(1)
    files["manifest.csv"] = files["manifest.csv"].replace(",P001_real.jpg,", f",{path},")
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    problem = next(p for p in result.errors if p.row == 2)
    assert "the file path" in problem.message


def test_missing_columns_are_listed():
    files = good_set(1)
    files["manifest.csv"] = "identity,file,generator\nP001,P001_real.jpg,x\n"
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.row, problem.file) == (1, "manifest.csv")
    assert "missing the column(s) role, source" in problem.message


def test_missing_file_names_the_row():
    files = good_set(2)
    del files["P002_ai.jpg"]
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert "row 6, P002_ai.jpg: is not in the ZIP" in messages(result)


def test_missing_file_with_other_case_gets_a_hint():
    files = good_set(1)
    files["P001_AI.JPG"] = files.pop("P001_ai.jpg")
    result = read_stimulus_zip(make_zip(files))
    assert (
        "row 3, P001_ai.jpg: is not in the ZIP"
        " (the ZIP has 'P001_AI.JPG': names are case-sensitive)" in messages(result)
    )


def test_identity_without_an_ai_headshot():
    files = good_set(2)
    lines = [line for line in files["manifest.csv"].splitlines() if "P002_ai" not in line]
    files["manifest.csv"] = "\n".join(lines) + "\n"
    del files["P002_ai.jpg"]
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert messages(result) == ["row 5: identity P002 has no ai headshot"]


def test_identity_with_only_a_probe_lacks_both_headshots():
    files = good_set(1)
    files["P009.jpg"] = encode(picture(40), "JPEG")
    files["manifest.csv"] += "P009,probe,photo,P009.jpg,phone,,,,yes\n"
    result = read_stimulus_zip(make_zip(files))
    assert messages(result) == [
        "row 5: identity P009 has no real headshot",
        "row 5: identity P009 has no ai headshot",
    ]


def test_duplicate_image_in_the_set():
    files = good_set(2)
    files["P002_probe.jpg"] = files["P001_real.jpg"]
    files["manifest.csv"] = files["manifest.csv"].replace("P002_photo.jpg", "P002_probe.jpg")
    del files["P002_photo.jpg"]
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert "row 7, P002_probe.jpg: is the same image as P001_real.jpg (row 2)" in messages(result)


def test_same_file_listed_twice():
    files = good_set(1)
    files["manifest.csv"] += "P001,headshot,real,P001_real.jpg,Canon R5,,,,\n"
    result = read_stimulus_zip(make_zip(files))
    assert "row 5, P001_real.jpg: is listed twice (also in row 2)" in messages(result)


def test_image_already_in_the_study():
    files = good_set(1)
    existing = {process_image(files["P001_ai.jpg"]).sha256}
    result = read_stimulus_zip(make_zip(files), existing_hashes=existing)
    assert messages(result) == ["row 3, P001_ai.jpg: the same image is already in this study"]


def test_unreadable_image_is_reported_with_its_row():
    files = good_set(1)
    files["P001_ai.jpg"] = b"this is a text file"
    result = read_stimulus_zip(make_zip(files))
    assert messages(result) == ["row 3, P001_ai.jpg: is not a JPEG, PNG or WebP image"]
    assert len(result.images) == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("P001,portrait,real,x.jpg,a,,,,", "role 'portrait' is unknown: use headshot or probe"),
        ("P001,headshot,fake,x.jpg,a,,,,", "source 'fake' is unknown"),
        ("P001,headshot,photo,x.jpg,a,,,,", "a headshot's source must be real or ai, not 'photo'"),
        ("P001,probe,ai,x.jpg,a,,,,", "a probe's source must be photo, not 'ai'"),
        ("P 1,probe,photo,x.jpg,a,,,,", "identity code 'P 1' must be"),
        (",probe,photo,x.jpg,a,,,,", "identity is empty"),
        ("P001,probe,photo,x.jpg,a,,,,maybe", "consent must be yes or no, not 'maybe'"),
        ("P001,probe,photo,x.jpg," + "g" * 201 + ",,,,", "generator is longer than 200 characters"),
        ("P001,probe,photo,x.jpg,a,,,,,extra", "has 10 cells but the header has 9"),
    ],
)
def test_bad_cells_are_reported_with_their_row(row, message):
    files = good_set(1)
    files["x.jpg"] = encode(picture(77), "JPEG")
    files["manifest.csv"] += row + "\n"
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert any(p.row == 5 and message in p.message for p in result.errors), messages(result)


def test_conflicting_descriptors_of_one_identity():
    files = good_set(1)
    files["manifest.csv"] = files["manifest.csv"].replace(
        "P001_ai.jpg,HeadshotGen 2,30-44,woman", "P001_ai.jpg,HeadshotGen 2,30-44,man"
    )
    result = read_stimulus_zip(make_zip(files))
    assert messages(result) == [
        "row 3, P001_ai.jpg: identity P001 has gender 'man' here but 'woman' in row 2"
    ]


def test_descriptors_given_once_and_left_blank_elsewhere_agree():
    files = good_set(1)
    lines = files["manifest.csv"].splitlines()
    lines[2] = lines[2].replace(",30-44,woman,,yes", ",,,,")
    lines[3] = lines[3].replace(",30-44,woman,,yes", ",30-44,WOMAN,,")
    files["manifest.csv"] = "\n".join(lines)
    result = read_stimulus_zip(make_zip(files))
    assert result.ok and result.problems == []
    assert result.identities["P001"].gender == "woman"


def test_warnings_do_not_stop_an_import():
    files = good_set(1)
    files["notes.txt"] = "made in May"
    files["manifest.csv"] = (
        files["manifest.csv"].replace("HeadshotGen 2", "").replace(",yes", ",no")
    )
    result = read_stimulus_zip(make_zip(files))
    assert result.ok
    assert {p.level for p in result.problems} == {"warning"}
    assert messages(result) == [
        "row 3, P001_ai.jpg: generator is empty: name the AI model that made this headshot",
        "row 2: identity P001: image-use consent says no",
        "notes.txt: is in the ZIP but not in manifest.csv; it is ignored",
    ]
    assert result.identities["P001"].consent is False


def test_manifest_without_consent_column_warns_once():
    files = good_set(2)
    files["manifest.csv"] = "\n".join(
        line.rsplit(",", 1)[0] for line in files["manifest.csv"].splitlines()
    )
    result = read_stimulus_zip(make_zip(files))
    assert result.ok
    assert messages(result) == [
        "row 1, manifest.csv: has no consent column: no image-use consent is recorded"
    ]


def test_unknown_columns_are_a_warning():
    files = good_set(1)
    lines = files["manifest.csv"].splitlines()
    files["manifest.csv"] = "\n".join([lines[0] + ",notes"] + [line + ",hi" for line in lines[1:]])
    result = read_stimulus_zip(make_zip(files))
    assert result.ok
    assert messages(result) == ["row 1, manifest.csv: column 'notes' is not used"]


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"", "manifest.csv: is empty"),
        (b"\n\n", "manifest.csv: is empty"),
        (b"\xef\xbb\xbf", "manifest.csv: is empty"),
        (b"\xef\xbb\xbf\n \n", "manifest.csv: is empty"),
        (b"\xef\xbb\xbf" + HEADER.encode(), "manifest.csv: has a header but no rows"),
        (HEADER.encode() + b"\n", "manifest.csv: has a header but no rows"),
        (HEADER.encode() + b"\n,,,,,,,,\n", "manifest.csv: has a header but no rows"),
        (
            HEADER.encode() + "\nP001,headshot,real,Müller.jpg,x,,,,yes\n".encode("latin-1"),
            "row 2, manifest.csv: is not UTF-8 text (byte 0xfc); save it as 'CSV UTF-8'",
        ),
        (
            b"identity,role,role,source,file,generator\n",
            "row 1, manifest.csv: has the column(s) role more than once",
        ),
    ],
)
def test_unusable_manifests(manifest, message):
    files = good_set(1)
    files["manifest.csv"] = manifest
    result = read_stimulus_zip(make_zip(files))
    assert not result.ok
    assert messages(result) == [message]


def test_non_ascii_names_match_across_unicode_forms():
    # Manifests typed on most systems use composed letters; macOS ZIPs often decomposed ones.
    files = good_set(1)
    files["Zoë_ai.jpg".replace("ë", "e\u0308")] = files.pop("P001_ai.jpg")
    files["manifest.csv"] = files["manifest.csv"].replace("P001_ai.jpg", "Zo\u00eb_ai.jpg")
    result = read_stimulus_zip(make_zip(files))
    assert result.ok, messages(result)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a zip file", "The upload is not a ZIP archive"),
        (b"", "The upload is not a ZIP archive"),
        (encode(picture(), "PNG"), "The upload is not a ZIP archive"),
        (make_zip({}), "The ZIP archive is empty"),
        (
            make_zip({"P001.jpg": b"x"}),
            "The ZIP has no manifest.csv; put it at the top, beside the images",
        ),
        (
            make_zip({"a/manifest.csv": "x", "b/manifest.csv": "x"}),
            "The ZIP holds several manifests (a/manifest.csv, b/manifest.csv); keep one at the top",
        ),
    ],
)
def test_archives_that_cannot_be_read(data, message):
    result = read_stimulus_zip(io.BytesIO(data))
    assert not result.ok
    assert messages(result) == [message]


def test_too_many_entries_are_refused_before_reading():
    result = read_stimulus_zip(make_zip(good_set(2)), max_files=5)
    assert messages(result) == ["The ZIP has 7 entries, more than the limit of 5"]


def test_declared_size_is_checked_before_unpacking():
    # A megabyte of zeros compresses to about a kilobyte: the declared size is what counts.
    bomb = make_zip({"manifest.csv": HEADER + "\n", "zeros.jpg": b"\x00" * 1024 * 1024})
    assert len(bomb) < 10_000
    result = read_stimulus_zip(bomb, max_total_bytes=512 * 1024)
    assert messages(result) == ["The ZIP unpacks to 1.0 MiB, more than the limit of 0.5 MiB"]


def test_image_larger_than_the_limit_is_not_unpacked():
    files = good_set(1)
    files["P001_ai.jpg"] = b"\xff\xd8" + b"\x00" * 4096
    result = read_stimulus_zip(make_zip(files), max_image_bytes=2048)
    assert "row 3, P001_ai.jpg: is 0.0 MiB, larger than the limit of 0.0 MiB" in messages(result)


def patch_entry(
    data: bytes, name: str, local_offset: int, central_offset: int, value: bytes
) -> bytes:
    """Overwrite a field of an entry's local and central headers, as a tampered ZIP would."""
    out = bytearray(data)
    encoded = name.encode()
    patched = 0
    for signature, name_at, offset in (
        (b"PK\x03\x04", 30, local_offset),
        (b"PK\x01\x02", 46, central_offset),
    ):
        start = out.find(signature)
        while start >= 0:
            if out[start + name_at : start + name_at + len(encoded)] == encoded:
                out[start + offset : start + offset + len(value)] = value
                patched += 1
            start = out.find(signature, start + 4)
    assert patched == 2
    return bytes(out)


def test_entry_that_unpacks_to_more_than_it_declares_is_refused():
    files = good_set(1)
    files["P001_ai.jpg"] = b"\x00" * 100_000
    # The entry declares 10 bytes (uncompressed size) in both of its headers.
    data = patch_entry(make_zip(files), "P001_ai.jpg", 22, 24, struct.pack("<I", 10))
    result = read_stimulus_zip(data)
    problem = next(p for p in result.problems if p.file == "P001_ai.jpg")
    assert problem.row == 3 and "could not be unpacked from the ZIP" in problem.message


def test_encrypted_entry_is_refused():
    # Bit 0 of the general-purpose flags marks an encrypted entry.
    data = patch_entry(make_zip(good_set(1)), "P001_ai.jpg", 6, 8, b"\x01")
    result = read_stimulus_zip(data)
    assert "P001_ai.jpg: is encrypted; make the ZIP without a password" in messages(result)
    assert not result.ok


def test_problem_strings_say_where_then_what():
    assert str(Problem(3, "a.jpg", "is bad")) == "row 3, a.jpg: is bad"
    assert str(Problem(None, "a.jpg", "is bad")) == "a.jpg: is bad"
    assert str(Problem(4, None, "is bad")) == "row 4: is bad"
    assert str(Problem(None, None, "The ZIP is bad")) == "The ZIP is bad"
    assert Problem(1, None, "x").level == "error"


# --- what checking one ZIP may cost ---------------------------------------------------------------


def test_problems_of_one_kind_are_kept_up_to_a_share_and_counted_beyond():
    from survey.stimuli.manifest import MAX_PROBLEMS_PER_KIND

    rows = [HEADER] + [f"P{i:03d},headshot,real,m{i}.jpg,x,,,,yes" for i in range(50)]
    result = read_stimulus_zip(make_zip({"manifest.csv": "\n".join(rows)}))
    assert not result.ok and result.error_count == 100  # a missing file and an ai headshot each
    missing = [p for p in result.problems if "is not in the ZIP" in p.message]
    assert [p.row for p in missing] == list(range(2, 2 + MAX_PROBLEMS_PER_KIND))
    hidden = {str(example): count for count, example in result.hidden_summary("error")}
    n = MAX_PROBLEMS_PER_KIND  # shown of each kind; the rest are counted under the first hidden
    assert hidden == {
        f"row {2 + n}, m{n}.jpg: is not in the ZIP": 50 - n,
        f"row {2 + n}: identity P{n:03d} has no ai headshot": 50 - n,
    }


def test_the_report_holds_at_most_max_problems_in_all(monkeypatch):
    import survey.stimuli.manifest as stimuli

    monkeypatch.setattr(stimuli, "MAX_PROBLEMS", 7)
    rows = [HEADER] + [f"P{i:03d},headshot,real,m{i}.jpg,x,,,,yes" for i in range(12)]
    result = read_stimulus_zip(make_zip({"manifest.csv": "\n".join(rows)}))
    assert len(result.problems) == 7 and result.error_count == 24
    assert sum(count for count, _ in result.hidden_summary("error")) == 24 - 7


def test_checking_stops_after_many_errors(monkeypatch):
    import survey.stimuli.manifest as stimuli

    monkeypatch.setattr(stimuli, "MAX_ERRORS_CHECKED", 10)
    rows = [HEADER] + [f"P{i:03d},headshot,real,m{i}.jpg,x,,,,yes" for i in range(1000)]
    result = read_stimulus_zip(make_zip({"manifest.csv": "\n".join(rows)}))
    assert result.error_count == 11
    assert "manifest.csv: checking stopped at row 12 after 10 problems" in messages(result)[-1]


def test_a_wide_header_and_many_short_rows_cost_little():
    # 500 unused columns and 5,000 one-cell rows: each row is read for the used columns only
    # (a row used to be padded to the header's width) and checking stops after
    # MAX_ERRORS_CHECKED errors, so this takes a fraction of a second.
    head = HEADER + "," + ",".join(f"c{i}" for i in range(500))
    manifest = head + "\n" + "x\n" * 5_000
    start = time.perf_counter()
    result = read_stimulus_zip(make_zip({"manifest.csv": manifest}))
    assert time.perf_counter() - start < 10
    assert "checking stopped at row" in messages(result)[-1]
    assert len(result.problems) <= 500


def test_a_zip_over_its_pixel_budget_is_refused_before_decoding():
    files = good_set(2)  # six 120×160 pictures: 115,200 pixels
    assert read_stimulus_zip(make_zip(files), max_pixels=115_200).ok
    files["P002_ai.jpg"] = png_header_only(8000, 4000)  # decoding would fail: header only
    result = read_stimulus_zip(make_zip(files), max_pixels=1_000_000)
    assert not result.ok and result.images == []
    assert messages(result)[0] == (
        "The images of this ZIP add up to more than 1.0 megapixels (the limit for one upload; "
        "P002_ai.jpg is 8000×4000 pixels). Make the images smaller or split the set into "
        "several ZIPs: a later ZIP may add images to identities uploaded before."
    )


def test_a_zip_over_its_time_budget_is_refused():
    result = read_stimulus_zip(make_zip(good_set(1)), max_seconds=0)
    assert not result.ok and result.images == []
    assert messages(result)[0].startswith(
        "Checking this ZIP took longer than one upload may (0 seconds), so nothing was imported."
    )
