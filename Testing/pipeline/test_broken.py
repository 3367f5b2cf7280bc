"""The broken-variant generator: deterministic, each kind breaks what it says, and the
writer gives neutral names on the case's grid."""

import numpy as np
import pytest

from uncertaintyseg import MODALITIES
from uncertaintyseg.inputs.broken import KINDS, main, make_variant, write_variant
from uncertaintyseg.files.io import load_case
from uncertaintyseg.files.phantom import make_phantom, write_phantom_case

SHAPE, SPACING = (40, 64, 56), (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def image():
    return make_phantom(SHAPE, SPACING, seed=2).image


@pytest.fixture(scope="module")
def other():
    return make_phantom(SHAPE, SPACING, seed=3).image


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_deterministic_and_changes_the_case(image, other, kind):
    first = make_variant(image, kind, seed=5, spacing=SPACING, other=other)
    again = make_variant(image, kind, seed=5, spacing=SPACING, other=other)
    assert first.shape == image.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, image)


def test_swap_exchanges_the_two_volumes(image):
    swapped = make_variant(image, "swap_flair_t1", seed=0)
    np.testing.assert_array_equal(swapped[0], image[1])
    np.testing.assert_array_equal(swapped[1], image[0])
    np.testing.assert_array_equal(swapped[2:], image[2:])


def test_missing_contrast_is_a_scaled_t1(image):
    t1ce = make_variant(image, "missing_contrast", seed=1)[MODALITIES.index("t1ce")]
    t1 = image[MODALITIES.index("t1")]
    ratio = t1ce[t1 != 0] / t1[t1 != 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and ratio[0] != 1.0


def test_partial_coverage_and_misalignment_break_one_volume(image):
    for kind in ("partial_coverage", "misalignment"):
        broken = make_variant(image, kind, seed=1, spacing=SPACING)
        changed = [i for i in range(4) if not np.array_equal(broken[i], image[i])]
        assert len(changed) == 1, kind
        if kind == "partial_coverage":  # fewer slices covered, the rest unchanged
            slices = [(v != 0).any(axis=(1, 2)).sum() for v in (broken[changed[0]],
                                                                image[changed[0]])]
            assert slices[0] < slices[1]


def test_rim_is_outside_the_brain(image):
    rim = make_variant(image, "rim", seed=1, spacing=SPACING)
    added = (rim != 0).any(axis=0) & ~(image != 0).any(axis=0)
    assert added.sum() > 0
    inside = (image != 0).any(axis=0)
    np.testing.assert_array_equal(rim[:, inside], image[:, inside])


def test_bad_kind_and_mixture_without_a_second_case(image):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_variant(image, "upside_down")
    with pytest.raises(ValueError, match="second case"):
        make_variant(image, "mixture")


def test_writer_and_command_line(tmp_path, capsys):
    folder = write_phantom_case(tmp_path / "case", seed=1, shape=(20, 40, 40),
                                spacing=(8.0, 4.0, 4.0))
    case = load_case(case_dir=folder)
    assert main([str(folder), "swap_flair_t1", str(tmp_path / "out"), "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    paths = {m: tmp_path / "out" / f"vol{i}.nii.gz" for i, m in enumerate(MODALITIES)}
    assert all(f"--{m} {p}" in printed for m, p in paths.items())
    written = load_case(paths=paths)
    np.testing.assert_array_equal(written.image[0], case.image[1])
    assert written.spacing == case.spacing
    again = write_variant(case.image, case.reference, tmp_path / "again")
    assert [p.name for p in again.values()] == [f"vol{i}.nii.gz" for i in range(4)]
