"""Tests of uncertaintyseg.files.phantom: reproducibility, anatomy, contrasts, geometry, files."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from uncertaintyseg import MODALITIES
from uncertaintyseg.files import io, label_maps
from uncertaintyseg.files.phantom import Phantom, make_phantom, write_phantom_case

# The default 80 x 128 x 112 mm field of view sampled at 2 mm: same anatomy, fast.
SMALL = dict(shape=(40, 64, 56), spacing=(2.0, 2.0, 2.0))
FLAIR, T1, T1CE, T2 = (MODALITIES.index(m) for m in ("flair", "t1", "t1ce", "t2"))


@pytest.fixture(scope="module")
def phantoms():
    return {seed: make_phantom(seed=seed, **SMALL) for seed in range(4)}


def tumour_centre_mm(phantom: Phantom) -> np.ndarray:
    shape = np.array(phantom.labels.shape)
    centre = np.array(ndimage.center_of_mass(phantom.labels > 0))
    return (centre - (shape - 1) / 2) * np.array(phantom.spacing)


def volume_ml(mask, spacing) -> float:
    return float(mask.sum() * np.prod(spacing) / 1000.0)


def test_same_seed_same_phantom_other_seed_other_tumour(phantoms):
    again = make_phantom(seed=2, **SMALL)
    np.testing.assert_array_equal(again.image, phantoms[2].image)
    np.testing.assert_array_equal(again.labels, phantoms[2].labels)
    assert not np.array_equal(phantoms[0].image, phantoms[1].image)
    centres = [tumour_centre_mm(p) for p in phantoms.values()]
    volumes = [volume_ml(p.labels > 0, p.spacing) for p in phantoms.values()]
    for i in range(len(centres)):
        for j in range(i):
            assert np.linalg.norm(centres[i] - centres[j]) > 3.0
            assert abs(volumes[i] - volumes[j]) > 0.1


def test_types_shapes_and_skull_stripping(phantoms):
    phantom = phantoms[0]
    assert phantom.image.shape == (4, 40, 64, 56) and phantom.image.dtype == np.float32
    assert phantom.labels.dtype == np.uint8 and phantom.spacing == (2.0, 2.0, 2.0)
    assert set(np.unique(phantom.labels).tolist()) == {0, 1, 2, 4}
    assert np.all(phantom.image[:, ~phantom.brain] == 0)
    assert np.all(phantom.image[:, phantom.brain] > 0)
    assert np.all(phantom.brain[phantom.labels > 0])
    # The brain sits inside the field of view with a margin of background.
    assert not phantom.brain[[0, -1]].any() and not phantom.brain[:, :, [0, -1]].any()


@pytest.mark.parametrize("seed", range(4))
def test_tumour_regions_are_nested(phantoms, seed):
    labels = phantoms[seed].labels
    ncr, ed, et = labels == 1, labels == 2, labels == 4
    tc = ncr | et
    assert ed.sum() > et.sum() > 0 and ncr.sum() > 0
    # The necrotic core lies inside the enhancing rim, the core inside the edema:
    # growing each by one voxel stays (almost entirely) in the next region.
    grown_ncr = ndimage.binary_dilation(ncr) & ~ncr
    assert np.mean(et[grown_ncr]) > 0.9
    grown_tc = ndimage.binary_dilation(tc) & ~tc
    assert np.mean(ed[grown_tc] | ~phantoms[seed].brain[grown_tc]) > 0.9
    assert ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))[1] == 1


def class_means(phantom: Phantom) -> dict[str, np.ndarray]:
    normal = phantom.brain & (phantom.labels == 0)
    classes = {"normal": normal, "ncr": phantom.labels == 1, "ed": phantom.labels == 2,
               "et": phantom.labels == 4}
    return {name: phantom.image[:, mask].mean(axis=1) for name, mask in classes.items()}


@pytest.mark.parametrize("seed", range(4))
def test_contrasts_follow_real_mri(phantoms, seed):
    mean = class_means(phantoms[seed])
    # Edema bright on FLAIR and T2.
    assert mean["ed"][FLAIR] > 1.3 * mean["normal"][FLAIR]
    assert mean["ed"][T2] > 1.3 * mean["normal"][T2]
    # Enhancing rim bright on T1ce, brighter than every other class.
    assert mean["et"][T1CE] > 1.3 * max(mean[c][T1CE] for c in ("normal", "ed", "ncr"))
    # Necrotic core dark on T1 and T1ce, bright on T2.
    assert mean["ncr"][T1] < 0.8 * mean["normal"][T1]
    assert mean["ncr"][T1CE] < 0.8 * mean["normal"][T1CE]
    assert mean["ncr"][T2] > 1.3 * mean["normal"][T2]


def test_brain_tissue_is_mid_grey(phantoms):
    phantom = phantoms[0]
    normal = phantom.brain & (phantom.labels == 0)
    for channel in range(4):
        bright = np.percentile(phantom.image[channel, phantom.brain], 99.9)
        assert 0.25 < phantom.image[channel, normal].mean() / bright < 0.8


def test_anisotropic_spacing_keeps_tumour_size_and_place():
    iso = make_phantom(shape=(54, 86, 75), spacing=(1.5, 1.5, 1.5), seed=5)
    aniso = make_phantom(shape=(27, 107, 80), spacing=(3.0, 1.2, 1.4), seed=5)
    for region in label_maps.labels_to_regions(iso.labels), label_maps.labels_to_regions(aniso.labels):
        assert region[0].any()
    iso_regions = label_maps.labels_to_regions(iso.labels)
    aniso_regions = label_maps.labels_to_regions(aniso.labels)
    for index in range(3):
        expected = volume_ml(iso_regions[index], iso.spacing)
        found = volume_ml(aniso_regions[index], aniso.spacing)
        assert found == pytest.approx(expected, rel=0.15)
    assert volume_ml(aniso.brain, aniso.spacing) == pytest.approx(
        volume_ml(iso.brain, iso.spacing), rel=0.05)
    assert np.linalg.norm(tumour_centre_mm(iso) - tumour_centre_mm(aniso)) < 2.0


def test_a_small_field_of_view_still_holds_brain_and_tumour():
    # 20 x 48 x 40 mm at 1 mm: smaller than the 80 x 128 x 112 mm head, so the
    # anatomy is squeezed to fit rather than cropped.
    phantom = make_phantom(shape=(20, 48, 40), seed=5)
    assert set(np.unique(phantom.labels).tolist()) == {0, 1, 2, 4}
    assert not phantom.brain[[0, -1]].any() and not phantom.brain[:, [0, -1]].any()
    assert not phantom.brain[:, :, [0, -1]].any()
    assert phantom.brain.mean() > 0.2


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_phantom(shape=(40, 64), spacing=(2.0, 2.0))
    with pytest.raises(ValueError):
        make_phantom(shape=(40, 64, 56), spacing=(0.0, 2.0, 2.0))
    with pytest.raises(ValueError):
        write_phantom_case("unused", naming="brats2019")


@pytest.mark.parametrize("naming,et_value", [("brats2018", 4), ("brats2023", 3)])
def test_written_case_round_trips(tmp_path, phantoms, naming, et_value):
    shape, spacing = (40, 64, 56), (3.0, 2.0, 2.5)
    case_dir = write_phantom_case(tmp_path, seed=1, shape=shape, spacing=spacing,
                                  naming=naming)
    phantom = make_phantom(seed=1, shape=shape, spacing=spacing)
    case = io.load_case(case_dir)
    assert case.naming == naming
    assert case.spacing == pytest.approx(spacing)
    np.testing.assert_array_equal(case.image, phantom.image)
    # Identity direction, and the volume's centre at the physical origin.
    assert case.reference.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    centre_index = [(n - 1) / 2 for n in case.reference.GetSize()]
    centre = case.reference.TransformContinuousIndexToPhysicalPoint(centre_index)
    np.testing.assert_allclose(centre, 0.0, atol=1e-4)
    seg = [p for p in case_dir.iterdir() if "seg" in p.name]
    assert len(seg) == 1
    labels, convention = label_maps.load_labels(seg[0], reference=case.reference)
    assert convention == naming
    np.testing.assert_array_equal(labels == et_value, phantom.labels == 4)
    np.testing.assert_array_equal(label_maps.labels_to_regions(labels),
                                  label_maps.labels_to_regions(phantom.labels))
    assert sitk.ReadImage(str(seg[0])).GetPixelID() == sitk.sitkUInt8
