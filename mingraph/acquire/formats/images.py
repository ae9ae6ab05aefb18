"""Images of a field: BSE and label images, EDS sampling and specimen masks (TIFF through
tifffile, PNG through Pillow), and the class names of a label image.

Every reader checks what it returns and raises :class:`~mingraph.common.errors.InputError`
naming the file, the field and what was expected.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mingraph.acquire.grey_levels import bse_levels
from mingraph.acquire.limits import check_image_size, max_pixels
from mingraph.common.errors import InputError
from mingraph.common.textfiles import check_unique, read_json_input, read_text_input

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


_PIL_SAMPLE_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
"""Bytes a sample of the Pillow modes whose samples are wider than a byte."""


_PIL_LIMIT = threading.Lock()
"""Held while Pillow's decompression-bomb limit is mingraph's (:func:`_open_pil`)."""


def _open_pil(path: Path):
    """``PIL.Image.open(path)`` held to mingraph's own size rule
    (:func:`mingraph.acquire.limits.max_pixels`), so that every format meets the same limit.
    Pillow checks its limit when it opens a file: it is mingraph's for that call only, and
    Pillow's own setting is put back after (nothing else in the process is held to it)."""
    import warnings

    from PIL import Image

    with _PIL_LIMIT:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels()
        try:
            with warnings.catch_warnings():  # above the limit the size rule refuses, in its own words
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = old


def image_header(path: str | Path) -> tuple[tuple[int, ...], int, str]:
    """(shape (H, W[, samples]), bytes a sample, pixel type) of a TIFF or PNG from its header
    alone: nothing is decoded.  The pixel type is the numpy dtype (TIFF; "uint8 (palette)" for an
    indexed image) or the Pillow mode (PNG)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file", "not found")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(path, "format", f"expected one of {IMAGE_SUFFIXES}, got {path.suffix!r}")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                spp, depth = int(page.samplesperpixel), int(getattr(page, "imagedepth", 1) or 1)
                shape = (int(page.imagelength), int(page.imagewidth)) + ((spp,) if spp > 1 else ())
                shape += (depth,) if depth > 1 else ()
                if page.dtype is None:
                    raise InputError(path, "image", "a TIFF sample format numpy cannot hold")
                palette = " (palette)" if page.photometric == tifffile.PHOTOMETRIC.PALETTE else ""
                return shape, int(page.dtype.itemsize), f"{page.dtype}{palette}"
        with _open_pil(path) as im:
            w, h = im.size
            bands = len(im.getbands())
            return (
                (int(h), int(w)) + ((bands,) if bands > 1 else ()),
                _PIL_SAMPLE_BYTES.get(im.mode, 1),
                im.mode,
            )
    except InputError:
        raise
    except Exception as e:  # the libraries raise many types for a corrupt file
        raise InputError(path, "image", f"unreadable ({type(e).__name__}: {e})") from None


def _read_raw_image(path: Path, intensities: bool = False, work_per_pixel: int = 0) -> np.ndarray:
    """The pixel array of a TIFF or PNG.  With ``intensities``, palette (indexed) images are looked
    up through their palette, so the values are what the image shows, not palette indices.

    The header's size is first held to the size rule (:func:`mingraph.acquire.limits.check_image_size`),
    counting the decoded array, the library's own buffer (Pillow), a palette lookup and
    ``work_per_pixel`` bytes a pixel for what the caller makes of it: nothing is decoded before.
    """
    shape, itemsize, kind = image_header(path)
    tiff = path.suffix.lower() in (".tif", ".tiff")
    palette = 6 if tiff else 2 * 4  # a lookup to uint16 RGB (tifffile), to RGB(A) + its copy (Pillow)
    work = work_per_pixel + (palette if intensities and ("palette" in kind or kind in ("P", "PA")) else 0)
    if not tiff:  # Pillow decodes into its own buffer, then numpy copies it
        work += int(np.prod(shape[2:], dtype=np.int64)) * itemsize
    check_image_size(path, "image", shape, itemsize, work)
    try:
        if tiff:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                a = np.asarray(page.asarray())
                if intensities and page.photometric == tifffile.PHOTOMETRIC.PALETTE:
                    cmap = np.asarray(page.colormap)  # (3, 2**bits) uint16 RGB
                    a = np.moveaxis(cmap[:, a], 0, -1)
                return a
        with _open_pil(path) as im:
            if intensities and im.mode in ("P", "PA"):
                # palette indices are not grey levels: look them up (8-bit RGB palettes)
                return np.asarray(im.convert("RGBA" if im.mode == "PA" else "RGB"))
            return np.asarray(im)
    except MemoryError:
        raise InputError(
            path, "image", f"{' x '.join(map(str, shape))} {kind}: not enough memory to decode"
        ) from None
    except Exception as e:  # the libraries raise many types for a corrupt file
        raise InputError(path, "image", f"unreadable ({type(e).__name__}: {e})") from None


def read_bse(path: str | Path) -> np.ndarray:
    """A grey-level BSE image as float32 (H, W) in [0, 1].

    Integers are grey levels of 8 or 16 bits (:func:`bse_levels`: uint8 / 255, uint16 / 65535,
    16-bit levels in a 32-bit container as PIL and ImageJ write them / 65535); palette images
    are read through their palette; colour images (R, G, B differ) are refused, since their pixel
    values are not BSE intensities.  The header's size is checked before decoding (the size rule,
    docs/formats.md).  Raises InputError naming the file.
    """
    path = Path(path)
    a = _read_raw_image(path, intensities=True, work_per_pixel=6)  # float32 levels + a bool compare
    if a.ndim == 3 and a.shape[2] in (2, 4):  # grey + alpha or RGBA: the alpha must not hide pixels
        alpha = a[..., -1]
        if np.any(alpha != alpha.flat[0]):
            raise InputError(path, "bse", "the image has a varying alpha (transparency) channel")
        a = a[..., :-1]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[2] == 3:
        if not (np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 1], a[..., 2])):
            raise InputError(
                path, "bse", "a colour image (R, G and B differ): expected grey levels, e.g. a 16-bit TIFF"
            )
        a = a[..., 0]  # grey image saved as RGB
    return bse_levels(a, path)


def read_labels(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """An integer phase-id image as int32 (H, W); negative ids mean unknown (stored as -1).

    Palette images give their indices (the ids), not colours.  Ids above 2**31 - 1 are refused.
    """
    path = Path(path)
    a = _read_raw_image(path, work_per_pixel=13)  # a < 0, np.where's int64, the int32 ids
    if a.ndim != 2:
        raise InputError(path, "labels", f"expected a single-channel 2-D image, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise InputError(path, "labels", f"expected integer phase ids, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise InputError(path, "labels", f"shape {a.shape} differs from the BSE image {tuple(shape)}")
    if a.size and a.max() > np.iinfo(np.int32).max:
        raise InputError(path, "labels", f"phase id {a.max()} does not fit a 32-bit class id")
    return np.where(a < 0, -1, a).astype(np.int32)


def read_mask(path: str | Path, shape: tuple[int, int] | None = None, field: str = "mask") -> np.ndarray:
    """A binary mask image (any non-zero pixel is set) as bool."""
    path = Path(path)
    a = _read_raw_image(path, work_per_pixel=1)
    if a.ndim == 3:
        a = a[..., 0]
    if a.ndim != 2:
        raise InputError(path, field, f"expected a 2-D image, got shape {a.shape}")
    if shape is not None and a.shape != tuple(shape):
        raise InputError(path, field, f"shape {a.shape} differs from the BSE image {tuple(shape)}")
    return a != 0


def read_class_names(path: str | Path) -> list[str]:
    """Class names from JSON (a list, or {id: name}) or a text file with one name a line.

    Read as every text input is (:func:`mingraph.common.textfiles.read_text_input`: UTF-8 with or without
    a BOM); a name given twice (or an id, in JSON) is refused."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        obj = read_json_input(path, "class names")
        if isinstance(obj, dict):
            ids: dict[int, str] = {}
            for k, v in obj.items():
                try:
                    i = int(k)
                except ValueError:
                    raise InputError(
                        path, "class ids", f"keys must be integer class ids, got {k!r}"
                    ) from None
                if i in ids:
                    raise InputError(path, "class ids", f"id {i} appears twice ({k!r})")
                if not isinstance(v, str) or not v.strip():
                    raise InputError(path, "class names", f"id {i}: expected a non-empty name, got {v!r}")
                ids[i] = v.strip()
            if not ids or min(ids) < 0:
                raise InputError(path, "class ids", "expected non-negative integer ids")
            names = [ids.get(i, f"phase {i}") for i in range(max(ids) + 1)]
        elif isinstance(obj, list) and all(isinstance(x, str) and x.strip() for x in obj) and obj:
            names = [x.strip() for x in obj]
        else:
            raise InputError(path, "class names", "expected a list of names or an {id: name} object")
    else:
        names = [ln.strip() for ln in read_text_input(path, "class names").rstrip("\n").splitlines()]
        if not names or not all(names):
            raise InputError(
                path, "class names", "expected one non-empty name per line (line k names class k-1)"
            )
    check_unique(names, path, "class names")
    return names
