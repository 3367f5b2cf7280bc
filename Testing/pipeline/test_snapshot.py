"""Tests of uncertaintyseg.files.snapshot: a valid PNG of the documented size, the chosen slice,
and pixel statistics that prove the heatmap, outlines and boxes land where they should."""

from dataclasses import dataclass

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from uncertaintyseg.files import snapshot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEIGHT = round(snapshot.FIGSIZE_IN[1] * snapshot.DPI)
WIDTH = round(snapshot.FIGSIZE_IN[0] * snapshot.DPI)


@dataclass
class FakeBox:
    region: str
    rank: int
    score: float
    start: tuple
    size: tuple


def synthetic_case(shape=(6, 60, 40)):
    """Grey gradient 'brain' filling the grid, a small WT blob on slice 3, no uncertainty."""
    z, y, x = np.indices(shape)
    flair = (50.0 + y + 0.5 * x).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[3, 40:46, 25:31] = 2
    uncertainty = np.zeros((3,) + shape, dtype=np.float32)
    return flair, uncertainty, labels


def axes_by_label(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


def pixel_box(fig, ax, x0, x1, y0, y1):
    """Data rectangle -> (row0, row1, col0, col1) of the PNG (rows from the top)."""
    fig.canvas.draw()
    corners = ax.transData.transform([(x0, y0), (x1, y1)])
    cols = np.sort(corners[:, 0])
    rows = np.sort(HEIGHT - corners[:, 1])
    return rows[0], rows[1], cols[0], cols[1]


def axes_pixels(fig, ax):
    """Boolean (HEIGHT, WIDTH) mask of the pixels inside the axes' drawn box."""
    fig.canvas.draw()
    box = ax.get_window_extent()
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[int(np.ceil(HEIGHT - box.y1)) + 1:int(HEIGHT - box.y0) - 1,
         int(np.ceil(box.x0)) + 1:int(box.x1) - 1] = True
    return mask


def region_mask(rows0, rows1, cols0, cols1, grow=0):
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[max(int(rows0 - grow), 0):int(rows1 + grow),
         max(int(cols0 - grow), 0):int(cols1 + grow)] = True
    return mask


def saturated(png, threshold=0.15):
    rgb = png[..., :3]
    return rgb.max(axis=2) - rgb.min(axis=2) > threshold


def near_colour(png, colour, tolerance=0.12):
    return np.abs(png[..., :3] - np.asarray(to_rgb(colour))).max(axis=2) < tolerance


def test_png_is_valid_small_and_of_the_documented_size(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    uncertainty[:, 2:5, 30:50, 10:30] = 0.6
    boxes = [FakeBox("WT", 1, 3.0, (1, 28, 8), (4, 24, 24))]
    path = snapshot.write_snapshot(tmp_path / "case" / "snapshot.png", flair, uncertainty,
                                   labels, boxes, (1.0, 1.0, 1.0), title="synthetic")
    assert path == tmp_path / "case" / "snapshot.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert imread(path).shape[:2] == (HEIGHT, WIDTH)
    assert path.stat().st_size < 300_000
    assert [p.name for p in path.parent.iterdir()] == ["snapshot.png"]   # no temporary left


def test_choose_slice():
    labels = np.zeros((20, 8, 8), dtype=np.uint8)
    labels[12, 2:6, 2:6] = 1
    labels[4, 3:5, 3:5] = 4
    boxes = [FakeBox("ET", 1, 5.0, (0, 0, 0), (4, 4, 4)),
             FakeBox("WT", 1, 9.0, (3, 0, 0), (8, 4, 4)),     # best: centre 3 + 8 // 2
             FakeBox("TC", 1, 7.0, (14, 0, 0), (4, 4, 4))]
    assert snapshot.choose_slice(labels, boxes) == 7
    assert snapshot.choose_slice(labels, []) == 12        # most tumour voxels
    uncertainty = np.zeros((3, 20, 8, 8), dtype=np.float32)
    uncertainty[1, 15] = 0.5
    empty = np.zeros_like(labels)
    assert snapshot.choose_slice(empty, [], uncertainty) == 15
    assert snapshot.choose_slice(empty, []) == 10         # nothing at all: the middle
    # A box reaching past the last slice is clamped onto the grid.
    assert snapshot.choose_slice(labels, [FakeBox("WT", 1, 1.0, (18, 0, 0), (8, 4, 4))]) == 19


def test_heatmap_appears_only_inside_the_uncertain_square(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    # WT only: the max over regions shows it; within 15 mm of the tumour (rows 40-45,
    # columns 25-30), so drawn at full strength.
    uncertainty[2, :, 30:40, 15:25] = 0.9
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0))
    heat_ax = axes_by_label(fig, "uncertainty")
    square = pixel_box(fig, heat_ax, 14.5, 24.5, 29.5, 39.5)
    png = imread(snapshot.write_snapshot(tmp_path / "s.png", flair, uncertainty, labels, [],
                                         (1.0, 1.0, 1.0)))
    panel = axes_pixels(fig, heat_ax)
    inside = region_mask(*square, grow=-3) & panel
    outside = panel & ~region_mask(*square, grow=3)
    assert inside.sum() > 500
    assert saturated(png)[inside].mean() > 0.98
    assert saturated(png)[outside].sum() == 0
    # The colour is the colour map's value at 0.9 blended over grey with its own alpha
    # times HEAT_ALPHA: what is left after removing its share must be grey.
    *colour, alpha = snapshot.HEAT_CMAP(0.9)
    residue = png[inside][:, :3] - snapshot.HEAT_ALPHA * alpha * np.asarray(colour)
    assert np.abs(residue - residue.mean(axis=1, keepdims=True)).max() < 0.03
    # Transparent elsewhere: away from the square the right panel shows the same FLAIR
    # pixels as the left one (whose only overlay is the tumour outline, masked out).
    anatomy = axes_by_label(fig, "anatomy")
    shift = int(round(heat_ax.get_window_extent().x0 - anatomy.get_window_extent().x0))
    tumour = pixel_box(fig, heat_ax, 24.5, 30.5, 39.5, 45.5)
    plain = outside & ~region_mask(*tumour, grow=4)
    rows, cols = np.nonzero(plain)
    difference = np.abs(png[rows, cols, :3] - png[rows, cols - shift, :3])
    assert plain.sum() > 5000 and np.percentile(difference, 99) < 0.02


def test_outlines_on_the_left_panel_at_the_tumour(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0))
    anatomy = axes_by_label(fig, "anatomy")
    tumour = pixel_box(fig, anatomy, 24.5, 30.5, 39.5, 45.5)
    png = imread(snapshot.write_snapshot(tmp_path / "s.png", flair, uncertainty, labels, [],
                                         (1.0, 1.0, 1.0)))
    panel = axes_pixels(fig, anatomy)
    wt = near_colour(png, snapshot.REGION_COLOURS["WT"]) & panel
    assert wt[region_mask(*tumour, grow=4)].sum() > 40
    assert wt[~region_mask(*tumour, grow=4)].sum() == 0
    assert saturated(png)[panel & ~region_mask(*tumour, grow=4)].sum() == 0
    # No ET or TC in this case: their colours are absent from the image.
    for region in ("ET", "TC"):
        assert near_colour(png, snapshot.REGION_COLOURS[region])[panel].sum() == 0


def test_boxes_that_cut_the_slice_are_drawn_others_not(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    boxes = [FakeBox("WT", 1, 10.0, (1, 5, 5), (4, 30, 25)),   # slice 1 + 4 // 2 = 3
             FakeBox("ET", 1, 1.0, (4, 30, 10), (2, 10, 10))]  # slices 4-5: not shown
    fig = snapshot.render_figure(flair, uncertainty, labels, boxes, (1.0, 1.0, 1.0))
    heat_ax = axes_by_label(fig, "uncertainty")
    r0, r1, c0, c1 = pixel_box(fig, heat_ax, 4.5, 29.5, 4.5, 34.5)
    png = imread(snapshot.write_snapshot(tmp_path / "s.png", flair, uncertainty, labels, boxes,
                                         (1.0, 1.0, 1.0)))
    panel = axes_pixels(fig, heat_ax)
    cyan_rows, cyan_cols = np.nonzero(near_colour(png, snapshot.REGION_COLOURS["WT"]) & panel)
    assert cyan_rows.size > 100
    # Left, right and bottom edges where the rectangle is; the label tag sits on the top.
    assert abs(cyan_cols.min() - c0) <= 3 and abs(cyan_cols.max() - c1) <= 3
    assert abs(cyan_rows.max() - r1) <= 3 and cyan_rows.min() <= r0 + 2
    assert near_colour(png, snapshot.REGION_COLOURS["ET"])[panel].sum() == 0


def test_pixel_aspect_follows_the_spacing():
    flair, uncertainty, labels = synthetic_case(shape=(4, 30, 40))
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (3.0, 2.0, 1.0))
    fig.canvas.draw()
    box = axes_by_label(fig, "anatomy").get_window_extent()
    # 30 rows of 2 mm over 40 columns of 1 mm: the picture is 60 mm by 40 mm.
    assert box.height / box.width == pytest.approx(60.0 / 40.0, rel=0.02)


def test_orientation_follows_the_direction(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    uncertainty[2, :, 5:15, 5:12] = 0.8              # top-left corner of the array
    box = FakeBox("TC", 1, 2.0, (2, 30, 4), (3, 20, 16))
    plain = imread(snapshot.write_snapshot(tmp_path / "a.png", flair, uncertainty, labels,
                                           [box], (1.0, 1.0, 1.0)))
    # The same patient stored with y and x reversed (direction diag(-1, -1, 1)) must give
    # the same radiological picture.
    flipped_box = FakeBox("TC", 1, 2.0, (2, 60 - 50, 40 - 20), (3, 20, 16))
    args = (flair[:, ::-1, ::-1], uncertainty[:, :, ::-1, ::-1], labels[:, ::-1, ::-1],
            [flipped_box], (1.0, 1.0, 1.0))
    flipped = imread(snapshot.write_snapshot(tmp_path / "b.png", *args,
                                             direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)))
    assert np.abs(plain - flipped).mean() < 0.002
    naive = imread(snapshot.write_snapshot(tmp_path / "c.png", *args))
    assert np.abs(plain - naive).mean() > 0.02


def test_no_tumour_no_boxes_is_still_a_picture(tmp_path):
    flair = np.zeros((5, 20, 24), dtype=np.float32)
    flair[:, 4:16, 4:20] = 1.0
    path = snapshot.write_snapshot(tmp_path / "empty.png", flair,
                                   np.zeros((3, 5, 20, 24), np.float32),
                                   np.zeros((5, 20, 24), np.uint8), [], (1.0, 1.0, 1.0))
    png = imread(path)
    assert png.shape[:2] == (HEIGHT, WIDTH)
    assert png[..., :3].std() > 0.05                 # the brain and text are drawn
    assert saturated(png).sum() < 0.05 * png.shape[0] * png.shape[1]   # colourbar only


def test_bad_input_leaves_the_previous_file(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    path = snapshot.write_snapshot(tmp_path / "s.png", flair, uncertainty, labels, [], (1, 1, 1))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="uncertainty"):
        snapshot.write_snapshot(path, flair, uncertainty[:2], labels, [], (1, 1, 1))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"]


def test_only_top_ranked_boxes_are_drawn():
    flair, uncertainty, labels = synthetic_case()
    boxes = [FakeBox("WT", rank, 10.0 - rank, (1, 28, 8), (4, 24, 24)) for rank in (1, 2, 3, 4, 5)]
    figure = snapshot.render_figure(flair, uncertainty, labels, boxes, (1.0, 1.0, 1.0))
    heat = next(ax for ax in figure.axes if ax.get_label() == "uncertainty")
    labels_drawn = sorted(text.get_text() for text in heat.texts if "#" in text.get_text())
    assert labels_drawn == ["WT#1", "WT#2", "WT#3"]
    assert "3 here, 5 in all" in heat.get_title()


def test_box_labels_of_boxes_with_one_corner_do_not_cover_each_other():
    flair, uncertainty, labels = synthetic_case()
    boxes = [FakeBox(region, rank, 10.0 - rank, (1, 28, 8), (4, 24, 24))
             for region in ("ET", "TC", "WT") for rank in (1, 2, 3)]
    figure = snapshot.render_figure(flair, uncertainty, labels, boxes, (1.0, 1.0, 1.0))
    figure.canvas.draw()
    heat = axes_by_label(figure, "uncertainty")
    tags = [t for t in heat.texts if "#" in t.get_text()]
    assert len(tags) == 9
    renderer = figure.canvas.get_renderer()
    extents = [t.get_bbox_patch().get_window_extent(renderer) for t in tags]
    for i, a in enumerate(extents):
        for b in extents[i + 1:]:
            assert not a.overlaps(b)


def test_far_from_the_tumour_only_strong_uncertainty_shows_and_faintly(tmp_path):
    flair, uncertainty, labels = synthetic_case()
    uncertainty[2, :, 2:10, 2:10] = 0.9      # far (> 30 mm) from the tumour at rows 40-45
    uncertainty[2, :, 12:18, 2:10] = 0.3     # far and moderate: not drawn
    uncertainty[2, :, 34:40, 18:26] = 0.9    # beside the tumour
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0))
    heat_ax = axes_by_label(fig, "uncertainty")
    png = imread(snapshot.write_snapshot(tmp_path / "s.png", flair, uncertainty, labels, [],
                                         (1.0, 1.0, 1.0)))

    def chroma(x0, x1, y0, y1):
        mask = region_mask(*pixel_box(fig, heat_ax, x0, x1, y0, y1), grow=-3)
        rgb = png[mask][:, :3]
        return float((rgb.max(axis=1) - rgb.min(axis=1)).mean())

    near, far, moderate = (chroma(17.5, 25.5, 33.5, 39.5), chroma(1.5, 9.5, 1.5, 9.5),
                           chroma(1.5, 9.5, 11.5, 17.5))
    assert moderate < 0.02                  # grey FLAIR only
    assert 0.1 < far < 0.7 * near           # shown, fainter than the same value near it
    # Inside a drawn box the uncertainty that chose it is shown in full.
    box = FakeBox("WT", 1, 5.0, (1, 0, 0), (4, 20, 12))
    fig = snapshot.render_figure(flair, uncertainty, labels, [box], (1.0, 1.0, 1.0))
    heat_ax = axes_by_label(fig, "uncertainty")
    png = imread(snapshot.write_snapshot(tmp_path / "b.png", flair, uncertainty, labels,
                                         [box], (1.0, 1.0, 1.0)))
    assert chroma(1.5, 9.5, 1.5, 9.5) == pytest.approx(near, abs=0.03)
    assert chroma(1.5, 9.5, 11.5, 17.5) > 0.05


def test_snapshot_names_the_model_and_says_not_for_clinical_use():
    from uncertaintyseg.files.contract import provenance_note

    note = provenance_note({"model": {"name": "analytic", "trained": False}})
    assert "analytic" in note and "UNTRAINED" in note and "not for clinical use" in note
    assert "UNTRAINED" not in provenance_note({"model": {"name": "brats-mini", "trained": True}})
    flair, uncertainty, labels = synthetic_case()
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0), note=note)
    assert note in [t.get_text() for t in fig.texts]
    default = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0))
    assert any("not for clinical use" in t.get_text() for t in default.texts)


def test_snapshot_colours_are_the_slicer_scene_colours():
    from uncertaintyseg import palette

    for region, rgb in palette.REGION_COLOURS.items():
        assert np.allclose(to_rgb(snapshot.REGION_COLOURS[region]), rgb, atol=1 / 255)
    for t in (0.2, 0.5, 0.9):
        assert np.allclose(snapshot.HEAT_CMAP(t), palette.heatmap_rgba(t), atol=1 / 255)
    assert snapshot.HEAT_FLOOR == palette.HEATMAP_THRESHOLD


def test_the_case_flag_and_its_reason_are_written_red_when_flagged():
    flair, uncertainty, labels = synthetic_case()
    line = "quality: review - the tumour is 3 fragments, 60 % of it outside the largest"
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0), quality=line)
    shown = [t for t in fig.texts if t.get_text() == line]
    assert len(shown) == 1 and shown[0].get_color() == "#ff4040"
    long = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0),
                                   quality=line + " x" * 200)
    assert [t for t in long.texts if t.get_text().startswith(line)][0].get_text().endswith("...")
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0))
    assert not [t for t in fig.texts if t.get_text().startswith("quality:")]


def test_the_colour_bar_names_the_map_it_shows():
    """The error probability is not an entropy: the colour bar says which map it is."""
    flair, uncertainty, labels = synthetic_case()
    fig = snapshot.render_figure(flair, uncertainty, labels, [], (1.0, 1.0, 1.0),
                                 heat_label=snapshot.MAP_LABELS["error-probability"])
    assert axes_by_label(fig, "colorbar").get_ylabel() == \
        "probability the label is wrong (max over ET, TC, WT)"
