"""Images on disk: strict inspection for validation, RGB arrays for everything downstream, and the one PNG writer.

Raw files are only ever opened for reading. Grayscale, RGBA, palette and 16-bit images are accepted and converted
to 8-bit RGB, so one reader serves validation, augmentation, evaluation and prediction alike; one writer serves the
augment stage's images, predict's annotations and the sample data's contact sheet. Every image is read upright: a
camera that stores its pixels sideways with an EXIF orientation tag (most phones do) is turned as a viewer would
show it, so sizes, crops, boxes and training all see the picture the way a person does.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from pipeline import atomic
from pipeline.config import UserError

# Pillow refuses decompression bombs by default at ~179 Mpx; we keep a clear bound of our own.
MAX_PIXELS = 100_000_000


class ImageReadError(UserError, ValueError):
    """A file that is not a decodable image; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    channels: int
    bit_depth: int
    format: str
    sha256: str
    phash: str
    brightness: float


def _problem(data: bytes) -> str:
    if not data:
        return "zero-byte file"
    if data[:1].isascii() and all(32 <= b < 127 or b in (9, 10, 13) for b in data[:64]):
        return f"not an image: it holds text ({len(data):,} bytes), not the data of a picture"  # never its content
    return "not a decodable image (unknown or corrupt format)"


def _over_cap(size: str, name: str) -> ImageReadError:
    return ImageReadError(
        f"{name}: image of {size} exceeds the cap of {MAX_PIXELS:,} pixels (images.MAX_PIXELS); give a smaller picture"
    )


def refuse_oversized(data: bytes, name: str) -> None:
    """Refuse an image over MAX_PIXELS from its header alone: decoding it first is what exhausts memory (a PNG of a
    few kilobytes can hold 30000 x 30000 pixels, gigabytes once decoded)."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header, not the pixels
            width, height = img.size
    except Image.DecompressionBombError:
        # Pillow refuses to tell the size of an image past its own bound, which lies above ours
        raise _over_cap(f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels", name) from None
    except (OSError, SyntaxError, ValueError):
        return  # not a format Pillow reads: OpenCV decides, and names the problem
    if width * height > MAX_PIXELS:
        raise _over_cap(f"{width}x{height} ({width * height:,} pixels)", name)


def _pil_open(data: bytes, name: str) -> Image.Image:
    refuse_oversized(data, name)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # forces a full decode: a truncated JPEG or PNG fails here, not later in training
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: {_problem(data)}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{name}: corrupt or truncated image ({exc})") from None
    return img


def orientation(data: bytes) -> int:
    """The EXIF orientation tag of an encoded image (1, upright, when there is none or it cannot be read)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(array: np.ndarray, tag: int) -> np.ndarray:
    """``array`` as stored, turned as EXIF orientation ``tag`` says a viewer shows it (Pillow's ``exif_transpose``)."""
    if tag == 1:  # upright already, as most files are: no round trip through Pillow
        return array
    picture = Image.fromarray(array)
    picture.getexif()[ExifTags.Base.Orientation] = tag
    return np.array(ImageOps.exif_transpose(picture))


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Any cv2-decoded array (gray, BGR, BGRA; 8 or 16 bit) -> 8-bit RGB."""
    if array.dtype == np.uint16:
        array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = cv2.normalize(array, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def decode_rgb(data: bytes, name: str = "<bytes>") -> np.ndarray:
    if not data:  # cv2.imdecode raises its own error on an empty buffer rather than returning None
        raise ImageReadError(f"{name}: {_problem(data)}")
    refuse_oversized(data, name)
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(f"{name}: {_problem(data)}")
    return upright(to_rgb8(array), orientation(data))


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as an 8-bit RGB array (HxWx3)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    return decode_rgb(data, str(path))


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an 8-bit RGB array as a PNG, atomically. OpenCV's default compression: the augment stage's outputs (and
    so their DVC hashes) depend on these exact bytes."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a PNG of shape {rgb.shape}")
    atomic.write_bytes(path, data.tobytes())


def phash_bits(gray: np.ndarray) -> np.ndarray:
    """64-bit DCT perceptual hash, as 64 booleans: robust to re-encoding, resizing and small brightness changes."""
    small = cv2.resize(gray.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()
    return low > np.median(low[1:])


def phash(gray: np.ndarray) -> str:
    """``phash_bits`` as 16 hex digits, as the manifest records it."""
    return f"{int(''.join('1' if b else '0' for b in phash_bits(gray)), 2):016x}"


def inspect(path: str | Path) -> ImageInfo:
    """Decode a file strictly and describe it; raises ImageReadError naming the file and the problem."""
    return inspect_pixels(path)[0]


def inspect_pixels(path: str | Path) -> tuple[ImageInfo, np.ndarray]:
    """``inspect``, and the image itself as 8-bit RGB, upright (for what is measured on pixels, e.g. duplicates)."""
    path = Path(path)
    data = path.read_bytes()
    img = _pil_open(data, str(path))  # strict: catches truncation that cv2 would decode as grey
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageReadError(f"{path}: {img.format} image that OpenCV cannot decode")
    rgb = upright(to_rgb8(array), orientation(data))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    info = ImageInfo(
        width=gray.shape[1],
        height=gray.shape[0],
        channels=1 if array.ndim == 2 else array.shape[2],
        bit_depth=array.dtype.itemsize * 8,
        format=(img.format or "unknown").lower(),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(gray),
        brightness=round(float(gray.mean()), 2),
    )
    return info, rgb
