"""Post-processing (design 4.6): small-component removal on WT and nesting."""

import numpy as np
import pytest

from uncertaintyseg.stages.postprocess import nest, remove_small_components
from uncertaintyseg.training.component_fraction import choose_component_fraction

SHAPE = (30, 30, 30)


def regions_from_wt(wt):
    """TC and ET equal to WT, so the test sees what masking by WT does to them."""
    return np.stack([wt, wt, wt])


def big_blob():
    wt = np.zeros(SHAPE, dtype=bool)
    wt[5:15, 5:15, 5:15] = True  # 1000 voxels
    return wt


def test_small_far_blobs_go_large_ones_stay():
    wt = big_blob()
    wt[25:27, 25:27, 25:27] = True      # 8 voxels: under 10 % of 1000
    wt[2, 25, 25] = True                # 1 voxel
    wt[20:25, 20:25, 1:5] = True        # 100 voxels: exactly 10 %, kept
    out = remove_small_components(regions_from_wt(wt), fraction=0.1)
    expected = big_blob()
    expected[20:25, 20:25, 1:5] = True
    for r in range(3):
        np.testing.assert_array_equal(out[r], expected)
    # fraction 0 keeps everything, fraction 1 only the largest.
    np.testing.assert_array_equal(remove_small_components(regions_from_wt(wt), 0.0)[2], wt)
    np.testing.assert_array_equal(remove_small_components(regions_from_wt(wt), 1.0)[2],
                                  big_blob())


def test_corner_contact_is_one_component():
    wt = big_blob()
    # A 4^3 cube (64 voxels, < 10 % of the total) touching the blob at one corner only:
    # one component with 26-connectivity, a separate small one with 6-connectivity.
    wt[15:19, 15:19, 15:19] = True
    assert wt[14, 14, 14] and not wt[14, 15, 15] and not wt[15, 14, 14]
    out = remove_small_components(regions_from_wt(wt))
    np.testing.assert_array_equal(out[2], wt)
    # One voxel further away it is a separate component, and too small.
    wt = big_blob()
    wt[16:20, 16:20, 16:20] = True
    np.testing.assert_array_equal(remove_small_components(regions_from_wt(wt))[2],
                                  big_blob())


def test_tc_and_et_are_cut_to_the_remaining_wt():
    wt = big_blob()
    wt[25:27, 25:27, 25:27] = True
    tc = np.zeros(SHAPE, dtype=bool)
    tc[8:12, 8:12, 8:12] = True
    tc[25, 25, 25] = True               # inside the small WT blob that goes away
    et = tc.copy()
    et[26, 26, 26] = True
    out = remove_small_components(np.stack([et, tc, wt]))
    expected_tc = np.zeros(SHAPE, dtype=bool)
    expected_tc[8:12, 8:12, 8:12] = True
    np.testing.assert_array_equal(out[1], expected_tc)
    np.testing.assert_array_equal(out[0], expected_tc)
    assert out.dtype == bool and out.shape == (3,) + SHAPE


def test_empty_regions_and_input_untouched():
    empty = np.zeros((3,) + SHAPE, dtype=bool)
    assert not remove_small_components(empty).any()
    wt = big_blob()
    wt[0, 0, 0] = True
    regions = regions_from_wt(wt)
    before = regions.copy()
    remove_small_components(regions)
    nest(regions)
    np.testing.assert_array_equal(regions, before)
    with pytest.raises(ValueError):
        remove_small_components(wt)


def test_nest():
    rng = np.random.default_rng(0)
    regions = rng.random((3, 8, 9, 10)) < 0.5
    out = nest(regions)
    et, tc, wt = regions
    np.testing.assert_array_equal(out[2], wt)
    np.testing.assert_array_equal(out[1], tc & wt)
    np.testing.assert_array_equal(out[0], et & tc & wt)
    assert not (out[0] & ~out[1]).any() and not (out[1] & ~out[2]).any()
    np.testing.assert_array_equal(nest(out), out)  # idempotent


def _case(second_is_tumour: bool):
    """A 1000-voxel tumour plus a 343-voxel second blob (34 % of it), either a real second
    focus (in the reference) or a false positive; probabilities 0.9 on both blobs."""
    wt = big_blob()
    second = np.zeros(SHAPE, dtype=bool)
    second[20:27, 20:27, 20:27] = True
    probabilities = np.where(regions_from_wt(wt | second), 0.9, 0.05)
    reference = regions_from_wt(wt | second if second_is_tumour else wt)
    return probabilities, reference


def test_component_fraction_removes_false_positive_blobs():
    fraction, table = choose_component_fraction([_case(False)] * 2)
    assert fraction == 1.0
    assert table[1.0] == [1.0, 1.0, 1.0]
    assert table[0.1][2] == pytest.approx(2000 / 2343)  # the blob costs Dice at 0.1


def test_component_fraction_keeps_a_real_second_focus():
    # One multifocal case outweighs a false positive elsewhere only when it costs more
    # Dice than the blob does: here the loss from cutting the focus is larger.
    fraction, table = choose_component_fraction([_case(True), _case(True), _case(False)])
    assert fraction < 0.5  # 0.34 x the largest must survive
    assert np.mean(table[fraction]) > np.mean(table[1.0])


def test_component_fraction_needs_cases():
    with pytest.raises(ValueError, match="at least one case"):
        choose_component_fraction([])


def test_component_fraction_ties_go_to_the_stricter_filter():
    # A single clean tumour: every fraction gives the same Dice, and 1.0 is chosen.
    wt = big_blob()
    case = (np.where(regions_from_wt(wt), 0.9, 0.05), regions_from_wt(wt))
    fraction, table = choose_component_fraction([case])
    assert fraction == 1.0 and len({tuple(v) for v in table.values()}) == 1
