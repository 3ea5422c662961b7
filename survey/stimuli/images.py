"""Stimulus images: validate one upload and re-encode it without metadata, with a display copy."""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageOps, JpegImagePlugin

MIB = 1024 * 1024
MAX_IMAGE_BYTES = 20 * MIB
MAX_IMAGE_PIXELS = 40_000_000
MIN_SIDE = 64
DISPLAY_MAX = (800, 1000)

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


def megabytes(n: int) -> str:
    """Format a byte count in MiB for messages."""
    return f"{n / MIB:.1f} MiB"


def megapixels(n: int) -> str:
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


def header_size(data: bytes) -> tuple[int, int] | None:
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
            f"is {megabytes(len(data))}, larger than the limit of {megabytes(max_bytes)}",
        )
    other = _other_format(data)
    if other:
        raise ImageError(filename, f"is {other} file; use a JPEG, PNG or WebP image")

    def check_pixels(width: int, height: int) -> None:
        """Refuse an image with too many pixels before it is decoded."""
        if width * height > max_pixels:
            raise ImageError(
                filename,
                f"is {width}×{height} pixels ({megapixels(width * height)}), more than the "
                f"limit of {megapixels(max_pixels)}",
            )
        guard = Image.MAX_IMAGE_PIXELS
        if guard and width * height > guard:
            raise ImageError(
                filename,
                f"is too large to open safely ({width}×{height} pixels, more than Pillow's "
                f"guard of {megapixels(guard)})",
            )

    # Checked before Pillow opens the file: its WebP reader allocates the canvas on open.
    declared = header_size(data)
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
