"""Render the README / Extensions Index screenshots and the icons from an output folder.

    PYTHONPATH=UncertaintySeg python Resources/render_images.py OUTPUT_FOLDER

Writes Resources/Screenshots/{overview,axial,3d}.png (the axial view through the top box
with the heatmap, outlines and top boxes; the 3D view of the fused surfaces and boxes)
and the 128 x 128 icons Resources/UncertaintySeg.png and
UncertaintySeg/Resources/Icons/UncertaintySeg.png (the 3D view on a dark background).
Everything is drawn by UncertaintySegLib (slicer-core, offscreen), nothing by hand.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(output_folder: str) -> None:
    from UncertaintySegLib.bundle import (build_scene, render_views, set_up_views,
                                          write_screenshots)
    from UncertaintySegLib.render import OffscreenThreeDView, save_png

    bundle = build_scene(output_folder)
    red, threed = set_up_views(bundle, (640, 640))
    axial, volume = render_views(bundle, red, threed, max_rank=1)
    for path in write_screenshots(axial, volume, HERE / "Screenshots"):
        print(f"wrote {path}")

    icon_view = OffscreenThreeDView(bundle.logics, "icon", (128, 128))
    icon_view.set_background((0.08, 0.09, 0.13))
    top = [roi for roi, box in zip(bundle.run.rois, bundle.run.boxes) if int(box["rank"]) == 1]
    icon_view.look_from("Anterior", nodes=[bundle.run.segmentation, *top])
    _, icon = render_views(bundle, red, icon_view, max_rank=1)
    for path in (HERE / "UncertaintySeg.png",
                 HERE.parent / "UncertaintySeg" / "Resources" / "Icons" / "UncertaintySeg.png"):
        print(f"wrote {save_png(icon, path)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
