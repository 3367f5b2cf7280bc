"""No network work outside the brain: the 2D stage runs on the brain's bounding box (as
nnU-Net crops to the non-zero region) and skips slices without brain, so empty slices
and empty margins around a case change neither the network calls nor the result."""

from dataclasses import replace

import numpy as np
import SimpleITK as sitk
import torch

from uncertaintyseg.files.io import load_case, write_image_atomic
from uncertaintyseg.networks.models import analytic_model
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.pipeline import Settings, run_case

from test_batching import _Counting

torch.set_num_threads(1)
# Zero voxels added before and after the phantom along (x, y, z), SimpleITK's order.
PAD_LOW, PAD_HIGH = (5, 7, 6), (3, 2, 9)


def _padded_copy(case_dir, out_dir):
    """The case's files with empty slices and empty margins around them."""
    out_dir.mkdir()
    for path in case_dir.iterdir():
        image = sitk.ReadImage(str(path))
        write_image_atomic(sitk.ConstantPad(image, PAD_LOW, PAD_HIGH, 0), out_dir / path.name)
    return out_dir


def _run(case_dir):
    model = analytic_model()
    counting = _Counting(model.network_2d)
    # crop_margin 2: the phantom's brain has 2 empty voxels on its tightest side, so the
    # crop of the unpadded case is not clipped by the volume's border.
    settings = Settings(projections=3, kernel_mm=(8.0, 8.0, 16.0), max_boxes=2,
                        crop_margin=2, device="cpu", precision="fp32", outputs="all")
    result = run_case(load_case(case_dir=case_dir), replace(model, network_2d=counting),
                      settings)
    return result, counting.batches


def test_empty_slices_and_margins_change_no_network_call_nor_result(tmp_path):
    tight_dir = write_phantom_case(tmp_path / "tight", shape=(24, 48, 40))
    padded_dir = _padded_copy(tight_dir, tmp_path / "padded")
    tight, tight_views = _run(tight_dir)
    padded, padded_views = _run(padded_dir)
    assert padded_views == tight_views and sum(tight_views) > 0
    assert padded.report["working_grid"] == tight.report["working_grid"]
    assert padded.report["projections_per_slice"] == tight.report["projections_per_slice"]
    (x0, y0, z0), (x1, y1, z1) = PAD_LOW, PAD_HIGH
    inner = (slice(None), slice(z0, -z1), slice(y0, -y1), slice(x0, -x1))
    for name in ("probabilities_2d", "uncertainty", "uncertainty_raw", "probabilities"):
        got, expected = getattr(padded, name), getattr(tight, name)
        np.testing.assert_allclose(got[inner], expected, atol=1e-6, err_msg=name)
        outside = np.ones(got.shape[1:], bool)
        outside[inner[1:]] = False
        assert not got[:, outside].any(), name  # nothing outside the brain's box
    np.testing.assert_array_equal(padded.labels[inner[1:]], tight.labels)
    shift = (z0, y0, x0)
    assert [tuple(b.start) for b in padded.boxes] == [
        tuple(s + d for s, d in zip(b.start, shift)) for b in tight.boxes]
