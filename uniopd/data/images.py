"""The images of a data row (the `images` field), checked readable when the data is loaded.

A row's `images` is one image or a list of them, each one of:
    a path (str), relative to the data file's folder when it is not absolute
    the encoded file's bytes (PNG, JPEG, ...), as parquet tables hold them
    {"bytes": ..., "path": ...}, the form `datasets`' Image feature stores
    a PIL image, as a `datasets` image column hands them back

Each becomes an `ImageRef`: an absolute path (kept on disk, opened when a rollout needs it) or
the encoded bytes. Every image is opened and verified at load, so a missing or unreadable image
stops the run before any model loads, naming the row and the image, not in the middle of training.

A prompt may place its images with `<image>` placeholders (the convention of verl-style
multimodal data sets); when it has any, there must be one per image. A prompt without
placeholders gets its images before the question.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

from uniopd.data.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image

ImageRef = str | bytes  # an absolute path, or an encoded image file's bytes
PLACEHOLDER = "<image>"


def row_images(value: object, where: str, base: Path | None) -> tuple[ImageRef, ...]:
    """The checked images of a row's `images` field; `where` names the row in messages."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    refs = []
    for i, item in enumerate(items, start=1):
        at = f"{where}: field 'images': image {i}"
        ref = _ref(item, at, base)
        _verify(ref, at)
        refs.append(ref)
    return tuple(refs)


def check_placeholders(texts: list[str], n_images: int, where: str) -> None:
    """A prompt that places its images must place every one, exactly once."""
    n = sum(text.count(PLACEHOLDER) for text in texts)
    if n and n != n_images:
        raise DataError(
            f"{where}: the prompt has {n} {PLACEHOLDER} placeholder{'s' * (n != 1)} but the row "
            f"has {n_images} image{'s' * (n_images != 1)}; give one placeholder per image, or none "
            "(the images then go before the question)"
        )


def open_image(ref: ImageRef) -> Image:
    """The image as an RGB PIL image (the form image processors take)."""
    from PIL import Image

    image = Image.open(io.BytesIO(ref) if isinstance(ref, bytes) else ref)
    return image.convert("RGB")


def image_digest(ref: ImageRef) -> str:
    """A content hash, for cache keys: the same picture under another path is the same image."""
    data = ref if isinstance(ref, bytes) else Path(ref).read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _ref(item: object, at: str, base: Path | None) -> ImageRef:
    if isinstance(item, dict):  # datasets' Image storage: bytes win, the path is a fallback
        if item.get("bytes"):
            return _ref(item["bytes"], at, base)
        if item.get("path"):
            return _ref(item["path"], at, base)
        raise DataError(f"{at}: an image record with neither 'bytes' nor 'path'")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        if not item.strip():
            raise DataError(f"{at}: an empty path")
        path = Path(item).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise DataError(f"{at}: no image file at {path.resolve()}")
        return str(path.resolve())
    if hasattr(item, "save") and hasattr(item, "mode"):  # a PIL image, kept as PNG bytes
        buffer = io.BytesIO()
        item.save(buffer, format="PNG")
        return buffer.getvalue()
    raise DataError(
        f"{at}: expected a path, image bytes, a {{'bytes', 'path'}} record or a PIL image, "
        f"got {type(item).__name__}"
    )


def _verify(ref: ImageRef, at: str) -> None:
    from PIL import Image, UnidentifiedImageError

    source = ref if isinstance(ref, str) else f"{len(ref)} bytes"
    try:
        with Image.open(io.BytesIO(ref) if isinstance(ref, bytes) else ref) as image:
            image.verify()  # reads the whole file: a truncated image fails here, not mid-run
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{at} ({source}) is not an image Pillow can read: {err}") from None
