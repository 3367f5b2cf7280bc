"""Broken variants of a real case: the inputs the checks must name and a case-level
quality estimate must see (issue 17).

`make_variant(image, kind, seed)` returns a new float32 (4, Z, Y, X) array in
MODALITIES order; `write_variant` writes it with neutral names (vol0..vol3.nii.gz, as a
PACS export gives them) and returns the {modality: path} mapping to pass as
--flair/--t1/--t1ce/--t2. Deterministic for a seed.

    python -m uncertaintyseg.inputs.broken CASE_DIR KIND OUT_DIR [--seed N] [--other CASE_DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import MODALITIES

SWAPS = {"swap_flair_t1": ("flair", "t1"), "swap_t1_t1ce": ("t1", "t1ce"),
         "swap_flair_t2": ("flair", "t2"), "swap_t1ce_t2": ("t1ce", "t2")}
KINDS = (*SWAPS, "missing_contrast", "noise", "bias_field", "gamma", "thick_slices",
         "rim", "ghost", "partial_coverage", "misalignment", "mixture")
SHIFT_MM = 8.0          # misalignment
COVERAGE_CUT = 0.3      # partial coverage: share of the slices (top) left out
THICK_MM = 5.0          # thick slices
RIM_MM = (2.0, 4.0)     # skull-strip rim: thickness range of the bright shell


def _index(modality: str) -> int:
    return MODALITIES.index(modality)


def _bias(rng, shape, spacing, amplitude=0.4) -> np.ndarray:
    """Smooth multiplicative field exp(a * f): f the sum of one random profile per axis
    (knots every ~60 mm, linearly interpolated), scaled to a range of [-1, 1]."""
    field = np.zeros(shape, dtype=np.float32)
    for axis, (n, s) in enumerate(zip(shape, spacing)):
        knots = max(2, int(n * s / 60.0) + 1)
        profile = np.interp(np.arange(n), np.linspace(0, n - 1, knots), rng.normal(size=knots))
        field += profile.reshape([-1 if a == axis else 1 for a in range(3)]).astype(np.float32)
    field /= max(float(np.abs(field).max()), 1e-6)
    return np.exp(amplitude * field)


def _per_modality(image, function) -> np.ndarray:
    out = image.copy()
    for index in range(image.shape[0]):
        mask = image[index] != 0
        out[index] = np.where(mask, function(index, image[index], mask), 0.0)
    return out


def _noise(image, rng, level=0.1):
    def add(_, volume, mask):
        sigma = level * float(np.median(volume[mask]))
        return np.abs(volume + rng.normal(0.0, sigma, volume.shape))
    return _per_modality(image, add)


def _gamma(image, rng):
    def power(_, volume, mask):
        top = float(np.percentile(volume[mask], 99.5))
        gamma = rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.25, 1.6)])
        return top * np.clip(volume / top, 0.0, None) ** gamma
    return _per_modality(image, power)


def _thick(image, spacing):
    block = max(1, int(round(THICK_MM / spacing[0])))
    out = image.copy()
    for start in range(0, image.shape[1], block):
        out[:, start:start + block] = image[:, start:start + block].mean(axis=1, keepdims=True)
    return out


def _rim(image, rng, spacing):
    """A bright shell outside the brain (scalp fat, marrow) that a skull strip left."""
    out = image.copy()
    brain = (image != 0).any(axis=0)
    thickness = rng.uniform(*RIM_MM)
    outside = ndimage.distance_transform_edt(~brain, sampling=spacing)
    shell = (outside > 0) & (outside <= thickness)
    for index in range(image.shape[0]):
        top = float(np.percentile(image[index][brain], 99))
        out[index][shell] = top * rng.uniform(1.2, 1.8) * rng.uniform(0.8, 1.2, shell.sum())
    return out


def _ghost(image, rng):
    """A motion ghost: a faint copy shifted along the phase-encoding axis (Y)."""
    shift = image.shape[2] // int(rng.choice([3, 4, 6]))
    ghosted = image + 0.35 * np.roll(image, shift, axis=2)
    return np.where(image != 0, ghosted, 0.0).astype(np.float32)


def _shift(volume, voxels, axis):
    out = np.zeros_like(volume)
    source = [slice(None)] * 3
    target = [slice(None)] * 3
    source[axis] = slice(0, volume.shape[axis] - voxels)
    target[axis] = slice(voxels, None)
    out[tuple(target)] = volume[tuple(source)]
    return out


def make_variant(image: np.ndarray, kind: str, seed: int = 0, spacing=(1.0, 1.0, 1.0),
                 other: np.ndarray | None = None) -> np.ndarray:
    """A broken copy of `image` (4, Z, Y, X), MODALITIES order; `other`: a second
    patient's case on the same grid, for "mixture"."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rng = np.random.default_rng(seed)
    image = np.asarray(image, dtype=np.float32)
    out = image.copy()
    target = int(rng.integers(1, len(MODALITIES)))  # the volume that is broken alone
    if kind in SWAPS:
        a, b = map(_index, SWAPS[kind])
        out[[a, b]] = image[[b, a]]
    elif kind == "missing_contrast":
        out[_index("t1ce")] = image[_index("t1")] * rng.uniform(0.8, 1.25)
    elif kind == "noise":
        out = _noise(image, rng)
    elif kind == "bias_field":
        out = _per_modality(image, lambda i, v, m: v * _bias(rng, v.shape, spacing))
    elif kind == "gamma":
        out = _gamma(image, rng)
    elif kind == "thick_slices":
        out = _thick(image, spacing)
    elif kind == "rim":
        out = _rim(image, rng, spacing)
    elif kind == "ghost":
        out = _ghost(image, rng)
    elif kind == "partial_coverage":
        brain = np.flatnonzero(image[target].any(axis=(1, 2)))
        cut = brain[-1] - int(COVERAGE_CUT * (brain[-1] - brain[0]))
        out[target, cut:] = 0.0
    elif kind == "misalignment":
        axis = int(rng.integers(1, 3))
        out[target] = _shift(image[target], int(round(SHIFT_MM / spacing[axis])), axis)
    else:  # mixture
        if other is None or np.shape(other) != image.shape:
            raise ValueError("mixture: give `other`, a second case on the same grid")
        out[target] = np.asarray(other[target], dtype=np.float32)
    return out


def write_variant(image: np.ndarray, reference, out_dir) -> dict[str, Path]:
    """Write (4, Z, Y, X) as vol0..vol3.nii.gz with `reference`'s geometry (a
    SimpleITK image); returns {modality: path} in MODALITIES order."""
    from ..files.image_writer import write_image_atomic
    from ..files.io import to_image

    out_dir = Path(out_dir)
    paths = {}
    for index, modality in enumerate(MODALITIES):
        paths[modality] = out_dir / f"vol{index}.nii.gz"
        write_image_atomic(to_image(image[index], reference), paths[modality])
    return paths


def main(argv=None) -> int:
    from ..files.io import load_case

    parser = argparse.ArgumentParser(prog="python -m uncertaintyseg.inputs.broken",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("case_dir")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--other", help="a second case folder (for mixture)")
    args = parser.parse_args(argv)
    case = load_case(case_dir=args.case_dir)
    other = load_case(case_dir=args.other).image if args.other else None
    image = make_variant(case.image, args.kind, args.seed, case.spacing, other)
    for modality, path in write_variant(image, case.reference, args.out_dir).items():
        print(f"--{modality} {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
