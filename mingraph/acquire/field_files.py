"""Turn real files (BSE, labels, sampling mask, spectrum image or point spectra) into dataset records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mingraph.acquire.dataset import SPLITS, TileRecord
from mingraph.acquire.formats.images import read_bse, read_class_names, read_labels, read_mask
from mingraph.common.errors import InputError
from mingraph.common.output_paths import safe_name

DEFAULT_PIXEL_UM = 1.0


def resolve_pixel_size(given: float | None, from_file: float | None, source: object, say) -> float:
    """The pixel size (µm): ``given`` (--pixel-size) over the file's own, else 1 µm with a notice."""
    if given is not None:
        if not (np.isfinite(given) and given > 0):
            raise InputError("--pixel-size", "pixel size", f"expected a positive size in µm, got {given}")
        if from_file is not None and not np.isclose(given, from_file, rtol=1e-3):
            say(f"pixel size: {given:g} µm from --pixel-size (the file says {from_file:.4g} µm)")
        return float(given)
    if from_file is not None:
        say(f"pixel size: {from_file:.4g} µm from {source}")
        return float(from_file)
    say(
        f"pixel size: {source} does not say; using {DEFAULT_PIXEL_UM:g} µm "
        "(grain sizes and areas will be in these units): pass --pixel-size to set it"
    )
    return DEFAULT_PIXEL_UM


@dataclass
class FieldFiles:
    """The files of one field as a user gives them (paths, or None when absent)."""

    bse: str | Path | None = None
    labels: str | Path | None = None
    eds_mask: str | Path | None = None
    spectra: str | Path | None = None  # a hypermap (.bcf, .hspy)
    points: str | Path | None = None  # point spectra (.npz: rc (n, 2), spectra (n, channels))
    valid: str | Path | None = None
    classes: str | Path | None = None  # names of the label image's ids
    pixel_size_um: float | None = None
    split: str | None = None  # None: by a hash of the field's name and the seed (80/10/10)
    name: str | None = None
    tima: str | Path | None = None  # a TESCAN TIMA field folder (bse.png, xray.map, pixelmask.png)


def field_record(
    f: FieldFiles, seed: int = 0, say=None, work_dir: Path | None = None
) -> tuple[TileRecord, list[str], dict]:
    """Read one field's files into (record, its class names, metadata); every input is checked
    against the BSE shape.  Labels keep the ids of the label image (named by ``f.classes``)."""
    say = say or (lambda line: None)
    if f.split is not None and f.split not in SPLITS:
        raise InputError("--split", "split", f"expected one of {SPLITS}, got {f.split!r}")
    if f.spectra is not None and f.points is not None:
        raise InputError(
            "import", "spectra", "give a hypermap (--spectra) or point spectra (--points), not both"
        )
    cube = file_px = calibration = None
    instrument: dict = {}
    rc = point_spectra = tima_meta = tima_valid = None
    if f.tima is not None:
        if any(x is not None for x in (f.bse, f.spectra, f.points, f.eds_mask)):
            raise InputError(
                "import",
                "--tima",
                "the TIMA field folder holds the BSE and EDS: give no --bse/--spectra/--points/--eds-mask",
            )
        from mingraph.acquire.formats.tima import read_tima_field

        t = read_tima_field(f.tima, say)
        bse_img, file_px, tima_meta, tima_valid = t["bse"], t["pixel_size_um"], t["meta"], t["valid"]
        if t["rc"].shape[0] == bse_img.size:  # high-resolution mode: a spectrum at every pixel
            cube = t["spectra"].reshape(*bse_img.shape, -1)
        else:
            rc, point_spectra = t["rc"], t["spectra"]
    elif f.spectra is not None:
        from mingraph.acquire.calibration import summary_line
        from mingraph.acquire.formats import read_hypermap

        hm = read_hypermap(f.spectra, work_dir, require_bse=f.bse is None)
        cube, file_px, calibration, instrument = hm.cube, hm.pixel_size_um, hm.calibration, hm.instrument
        say(f"{f.spectra}: {summary_line(calibration)}")
        if f.bse is None:
            if hm.bse is None:
                raise InputError(
                    f.spectra, "bse", "the file holds no BSE image of the map's size: pass --bse"
                )
            say(f"{f.spectra}: BSE from its image {hm.bse_title!r}")
            bse_img = hm.bse
        else:
            bse_img = read_bse(f.bse)
            if bse_img.shape != cube.shape[:2]:
                raise InputError(
                    f.spectra,
                    "spectra",
                    f"map size {cube.shape[:2]} differs from the BSE image {bse_img.shape} ({f.bse})",
                )
    elif f.bse is not None:
        bse_img = read_bse(f.bse)
    else:
        raise InputError(
            "import", "bse", "give a BSE image (--bse) or a spectrum image that holds one (--spectra)"
        )
    shape = bse_img.shape
    px = resolve_pixel_size(f.pixel_size_um, file_px, f.tima or f.spectra or f.bse, say)
    lab = read_labels(f.labels, shape) if f.labels is not None else None
    mask = read_mask(f.eds_mask, shape, "eds_mask") if f.eds_mask is not None else None
    if mask is not None and not mask.any():
        raise InputError(f.eds_mask, "eds_mask", "no pixel is marked as measured (the mask is empty)")
    if rc is not None:
        mask = np.zeros(shape, bool)
        mask[rc[:, 0], rc[:, 1]] = True
    if f.points is not None:
        from mingraph.acquire.calibration import summary_line
        from mingraph.acquire.formats import read_points
        from mingraph.acquire.formats.points import check_measured

        rc, point_spectra, calibration = read_points(f.points, with_calibration=True)
        check_measured(rc, shape, f.points)
        measured = np.zeros(shape, bool)
        measured[rc[:, 0], rc[:, 1]] = True
        if mask is not None and not np.array_equal(mask, measured):
            raise InputError(f.eds_mask, "eds_mask", f"differs from the measured points of {f.points}")
        mask = measured
        if calibration.get("rebinned"):
            say(f"{f.points}: {summary_line(calibration)}")
    if f.valid is not None:  # the user's specimen mask wins over the TIMA profile's BSE window
        valid_mask = read_mask(f.valid, shape, "valid")
        if tima_meta is not None:
            tima_meta.pop("specimen_fraction", None)  # of a window not used
    else:
        valid_mask = tima_valid if tima_valid is not None else np.ones(shape, bool)
    if f.classes is not None:
        names = read_class_names(f.classes)
    else:
        n = int(lab.max()) + 1 if lab is not None and lab.size and lab.max() >= 0 else 0
        names = [f"phase {i}" for i in range(n)]
    if lab is not None and lab.size and lab.max() >= len(names):
        raise InputError(
            f.labels, "labels", f"phase id {int(lab.max())} has no name in {f.classes} ({len(names)} names)"
        )
    tile_id = f.name or (Path(f.tima).name if f.tima is not None else Path(f.bse or f.spectra).stem)
    safe_name(tile_id, f.bse or f.spectra or f.tima, "name")  # a field name becomes a folder name
    rec = TileRecord(
        tile_id=tile_id,
        split=f.split or split_of_name(tile_id, seed),
        bse=bse_img,
        valid=valid_mask,
        labels=lab,
        eds_mask=mask,
        pixel_size_um=px,
        eds_kind="dense" if cube is not None else ("points" if rc is not None else "none"),
        spectra=cube if cube is not None else point_spectra,
        eds_rc=rc,
        spectra_file=hm.cube_file if f.spectra is not None else None,
        eds_params={"instrument": instrument} if instrument else {},
    )
    sources = {
        k: str(v) for k, v in vars(f).items() if v is not None and k not in ("pixel_size_um", "split", "name")
    }
    meta = {"sources": sources, **({"calibration": calibration} if calibration is not None else {})}
    if instrument:
        meta["instrument"] = instrument
    if tima_meta is not None:
        meta["tima"] = tima_meta
    return rec, names, meta


def split_of_name(name: str, seed: int = 0, fractions: tuple[float, float] = (0.8, 0.9)) -> str:
    """train / val / test for a field, from a hash of its name and ``seed`` (80/10/10 on average):
    stable when fields are added, so a field never changes split."""
    import hashlib

    u = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") / 2.0**64
    return "train" if u < fractions[0] else ("val" if u < fractions[1] else "test")
