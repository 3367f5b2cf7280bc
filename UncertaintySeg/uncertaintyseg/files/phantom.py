"""Synthetic glioma phantom: a skull-stripped brain with one nested tumour.

Every size is defined in mm in a physical frame centred on the volume (axes
z, y, x; identity direction), and every random shape is a smooth random field
evaluated at physical coordinates (a sum of random plane waves). So the same seed
gives the same anatomy and tumour on any grid: a coarser or anisotropic spacing
changes only the sampling, not the tumour's volume in ml, as long as the field of
view (shape x spacing) holds the default one, 80 x 128 x 112 mm. A smaller field
of view (a small test volume at 1 mm) squeezes the anatomy along its short axes
so that it still holds the whole brain and tumour; sizes are then no longer in
mm (see ``anatomy_scale``). For a small, fast and true-to-size phantom ask for a
coarser spacing rather than a smaller shape.

Contrasts follow real MRI: edema bright on FLAIR and T2, the enhancing rim bright
on T1ce, the necrotic core dark on T1 and T1ce and bright on T2, CSF dark on FLAIR
and bright on T2, brain tissue mid-grey. Labels use BraTS 2017-2021 values
(1 NCR, 2 ED, 4 ET).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .. import MODALITIES
from .image_writer import write_image_atomic
from .io import BRATS2018, CONVENTIONS, SUFFIXES, to_image
from .label_maps import ET_LABEL

DEFAULT_FOV_MM = (80.0, 128.0, 112.0)  # (z, y, x): the anatomy's true-to-size frame
DEFAULT_SHAPE = (80, 128, 112)         # that field of view at 1 mm
BRAIN_SEMI_AXES_MM = (33.0, 54.0, 44.0)  # (z, y, x)

# Tissue classes of the phantom (index into INTENSITY) and their BraTS label.
BACKGROUND, WM, GM, CSF, NCR, ED, ET = range(7)
TISSUE_LABEL = np.array([0, 0, 0, 0, 1, 2, 4], dtype=np.uint8)
# Mean intensity per tissue and modality (FLAIR, T1, T1ce, T2), on the scale of
# BraTS int16 images.
INTENSITY = np.array([
    [0, 0, 0, 0],            # background (skull-stripped: zero)
    [420, 560, 540, 330],    # white matter: bright T1, dark T2
    [500, 430, 430, 460],    # grey matter
    [100, 170, 170, 950],    # CSF: suppressed on FLAIR, bright T2
    [450, 210, 200, 880],    # necrotic core: dark T1/T1ce, bright T2
    [820, 380, 390, 760],    # edema: bright FLAIR and T2
    [640, 430, 980, 620],    # enhancing rim: bright T1ce
], dtype=np.float64)
# Relative amplitude of the fine texture inside each tissue.
TEXTURE = np.array([0.0, 0.03, 0.05, 0.03, 0.10, 0.07, 0.12])
NOISE_SIGMA = 15.0      # Rician noise, in intensity units (about 3 % of tissue)
PARTIAL_VOLUME_MM = 0.6  # blur that mimics partial-volume at tissue borders


@dataclass
class Phantom:
    """image float32 (4, Z, Y, X) in MODALITIES order; labels uint8 (Z, Y, X) in
    {0, 1, 2, 4}; spacing (sz, sy, sx) mm; brain bool (Z, Y, X)."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    brain: np.ndarray


def anatomy_scale(shape, spacing) -> np.ndarray:
    """Per-axis (z, y, x) factor from the phantom's anatomy frame to physical mm:
    1 where the field of view holds the default one (sizes are then in mm), less
    where it is smaller (the anatomy is squeezed to fit)."""
    field_of_view = np.array(shape, dtype=float) * np.array(spacing, dtype=float)
    return np.minimum(1.0, field_of_view / np.array(DEFAULT_FOV_MM))


def _axes_mm(shape, spacing) -> list[np.ndarray]:
    """Anatomy-frame coordinate (mm) of every voxel centre along each axis, 0 at the
    centre: physical mm divided by ``anatomy_scale``."""
    scale = anatomy_scale(shape, spacing)
    return [(np.arange(n) - (n - 1) / 2.0) * s / f for n, s, f in zip(shape, spacing, scale)]


def _random_field(rng, axes, wavelength_mm: float, waves: int = 12) -> np.ndarray:
    """Smooth random field of unit variance, (Z, Y, X), defined in physical space.

    A sum of plane waves with random directions and phases; each wave factorises
    into a (Z, Y) and an (X) part, so the sum over waves is one matrix product.
    """
    z, y, x = axes
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    k = directions * (2 * np.pi / wavelength_mm) * rng.uniform(0.75, 1.25, (waves, 1))
    phase = rng.uniform(0, 2 * np.pi, waves)
    zy = np.exp(1j * (k[:, 0, None, None] * z[:, None] + k[:, 1, None, None] * y[None, :]
                      + phase[:, None, None]))
    xs = np.exp(1j * k[:, 2, None] * x[None, :])
    zy = zy.reshape(waves, -1).T * np.sqrt(2.0 / waves)
    # Re(zy @ xs) as two real products: no complex (Z, Y, X) temporary.
    field = zy.real @ xs.real - zy.imag @ xs.imag
    return field.reshape(len(z), len(y), len(x))


def _ellipsoid(axes, centre, semi_axes) -> np.ndarray:
    """Normalised ellipsoid radius (Z, Y, X): 1 on the surface."""
    z, y, x = axes
    return np.sqrt(((z[:, None, None] - centre[0]) / semi_axes[0]) ** 2
                   + ((y[None, :, None] - centre[1]) / semi_axes[1]) ** 2
                   + ((x[None, None, :] - centre[2]) / semi_axes[2]) ** 2)


def _anatomy(rng, axes) -> np.ndarray:
    """Tissue map (Z, Y, X) of the healthy brain: WM, cortex (GM), ventricles and
    sulci (CSF), background outside the brain."""
    radius = _ellipsoid(axes, (0.0, 0.0, 0.0), BRAIN_SEMI_AXES_MM)
    radius = radius + 0.03 * _random_field(rng, axes, 40.0)
    tissue = np.where(radius < 1.0, WM, BACKGROUND).astype(np.uint8)
    # Distance to the surface along the ray from the centre: |p| (1 / r - 1).
    z, y, x = axes
    norm = np.sqrt(z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2)
    depth = norm * (1.0 / np.maximum(radius, 1e-6) - 1.0)
    folds = _random_field(rng, axes, 14.0)
    brain = tissue == WM
    tissue[brain & (depth < 4.0 + 3.0 * folds)] = GM
    tissue[brain & (depth < 4.0) & (folds < -1.1)] = CSF   # sulci
    fissure = (np.abs(x)[None, None, :] < 0.8) & (depth < 15.0)
    tissue[brain & fissure] = CSF
    jitter = rng.normal(0.0, 1.5, size=3)
    for side in (-1.0, 1.0):
        centre = (4.0 + jitter[0], -2.0 + jitter[1], side * (7.0 + jitter[2]))
        ventricle = _ellipsoid(axes, centre, (7.0, 16.0, 4.5)) < 1.0
        tissue[brain & ventricle] = CSF
    return tissue


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 26-connected component: the brain border can cut islands
    off the edema, which a reference segmentation would not contain."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == np.argmax(sizes)


def _irregularity(rng, axes, radius_mm: float, amplitude: float) -> np.ndarray:
    """Border perturbation of a blob of ``radius_mm``: a coarse and a fine random field."""
    coarse = _random_field(rng, axes, 1.2 * radius_mm, waves=24)
    fine = _random_field(rng, axes, 0.5 * radius_mm, waves=24)
    return amplitude * (coarse + 0.4 * fine)


def _tumour(rng, axes, brain: np.ndarray) -> np.ndarray:
    """Tumour tissue map (Z, Y, X): ED, ET, NCR nested, background elsewhere."""
    r_wt = rng.uniform(15.0, 22.0)
    r_tc = r_wt * rng.uniform(0.45, 0.62)
    r_ncr = r_tc * rng.uniform(0.55, 0.7)
    # Centre in one hemisphere, far enough inside for the core to stay in the brain.
    room = np.maximum(np.array(BRAIN_SEMI_AXES_MM) - r_tc - 6.0, 0.0)
    direction = rng.normal(size=3)
    direction *= rng.uniform(0.0, 1.0) ** (1 / 3) / np.linalg.norm(direction)
    centre = direction * room
    centre[2] = rng.choice([-1.0, 1.0]) * (4.0 + abs(direction[2]) * max(room[2] - 4, 0))
    c_tc = centre + rng.normal(0.0, 0.15 * (r_wt - r_tc), 3)
    c_ncr = c_tc + rng.normal(0.0, 0.15 * (r_tc - r_ncr), 3)
    wt = _ellipsoid(axes, centre, (r_wt,) * 3) + _irregularity(rng, axes, r_wt, 0.14)
    tc = _ellipsoid(axes, c_tc, (r_tc,) * 3) + _irregularity(rng, axes, r_tc, 0.10)
    ncr = _ellipsoid(axes, c_ncr, (r_ncr,) * 3) + _irregularity(rng, axes, r_ncr, 0.12)
    wt = _largest_component((wt < 1.0) & brain)
    tc = (tc < 1.0) & wt
    tumour = np.zeros(brain.shape, dtype=np.uint8)
    tumour[wt] = ED
    tumour[tc] = ET
    tumour[(ncr < 1.0) & tc] = NCR
    return tumour


def _intensities(rng, axes, tissue: np.ndarray, spacing) -> np.ndarray:
    """Noise-free image float64 (4, Z, Y, X): tissue means x texture x bias field,
    blurred at tissue borders (partial volume), zero outside the brain."""
    texture = 1.0 + TEXTURE[tissue] * _random_field(rng, axes, 5.0, waves=24)
    sigma = [PARTIAL_VOLUME_MM / s for s in spacing]
    image = np.empty((len(MODALITIES),) + tissue.shape)
    for channel in range(len(MODALITIES)):
        bias = 1.0 + 0.06 * _random_field(rng, axes, 160.0, waves=4)
        clean = INTENSITY[tissue, channel] * texture * bias
        image[channel] = ndimage.gaussian_filter(clean, sigma, mode="nearest")
    return image


def _rician(rng, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Magnitude of the signal with complex gaussian noise; zero outside the brain."""
    real = image + rng.normal(0.0, NOISE_SIGMA, image.shape)
    imaginary = rng.normal(0.0, NOISE_SIGMA, image.shape)
    noisy = np.sqrt(real ** 2 + imaginary ** 2) * brain
    return noisy.astype(np.float32)


def make_phantom(shape=DEFAULT_SHAPE, spacing=(1.0, 1.0, 1.0), seed: int = 0) -> Phantom:
    """Build a phantom of ``shape`` (Z, Y, X) voxels at ``spacing`` (sz, sy, sx) mm.

    The seed fixes anatomy, tumour position, size and shape, texture and noise;
    the random shape parameters are drawn before the noise, so one seed gives the
    same tumour (in mm) on every grid.
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or len(spacing) != 3 or min(spacing) <= 0 or min(shape) < 2:
        raise ValueError(f"make_phantom: need a 3D shape and positive spacing, got "
                         f"{shape}, {spacing}")
    rng = np.random.default_rng(seed)
    axes = _axes_mm(shape, spacing)
    tissue = _anatomy(rng, axes)
    brain = tissue != BACKGROUND
    tumour = _tumour(rng, axes, brain)
    tissue = np.where(tumour != BACKGROUND, tumour, tissue)
    image = _rician(rng, _intensities(rng, axes, tissue, spacing), brain)
    return Phantom(image=image, labels=TISSUE_LABEL[tissue], spacing=spacing, brain=brain)


def _reference(shape, spacing) -> sitk.Image:
    """Empty image with the phantom's grid: identity direction, centred at (0, 0, 0)."""
    reference = sitk.Image([int(n) for n in reversed(shape)], sitk.sitkUInt8)
    spacing_xyz = tuple(float(s) for s in reversed(spacing))
    reference.SetSpacing(spacing_xyz)
    size_xyz = np.array(reference.GetSize(), dtype=float)
    reference.SetOrigin(tuple(-(size_xyz - 1) / 2.0 * np.array(spacing_xyz)))
    return reference


def write_phantom_case(out_dir, seed: int = 0, shape=DEFAULT_SHAPE,
                       spacing=(1.0, 1.0, 1.0), naming: str = BRATS2018) -> Path:
    """Write a phantom as a BraTS case folder under ``out_dir`` and return the folder.

    naming "brats2018": ``Phantom_0000/Phantom_0000_{flair,t1,t1ce,t2,seg}.nii.gz``,
    ET = 4; "brats2023": ``BraTS-PHANTOM-00000-000/...-{t2f,t1n,t1c,t2w,seg}.nii.gz``,
    ET = 3. Physical coordinates equal the phantom's own frame (centre at 0).
    """
    if naming not in CONVENTIONS:
        raise ValueError(f"naming must be one of {CONVENTIONS}, not {naming!r}")
    phantom = make_phantom(shape=shape, spacing=spacing, seed=seed)
    if naming == BRATS2018:
        case_id, separator = f"Phantom_{seed:04d}", "_"
    else:
        case_id, separator = f"BraTS-PHANTOM-{seed:05d}-000", "-"
    case_dir = Path(out_dir) / case_id
    reference = _reference(phantom.labels.shape, phantom.spacing)
    for channel, modality in enumerate(MODALITIES):
        name = f"{case_id}{separator}{SUFFIXES[naming][modality]}.nii.gz"
        write_image_atomic(to_image(phantom.image[channel], reference), case_dir / name)
    labels = phantom.labels.copy()
    labels[labels == ET_LABEL[BRATS2018]] = ET_LABEL[naming]
    write_image_atomic(to_image(labels, reference), case_dir / f"{case_id}{separator}seg.nii.gz")
    return case_dir
