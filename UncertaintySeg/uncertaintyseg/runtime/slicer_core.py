"""Whether the optional slicer-core wheel (the `scene` extra) is there: asked by the scene
command and by evaluate's 3D case figures, which both reach Slicer's MRML libraries
through `UncertaintySegLib` only when they run. Standard library only."""
from __future__ import annotations

INSTALL_HINT = ("the scene command needs Slicer's MRML libraries from the slicer-core wheel: "
                "pip install .[scene]  (or: pip install slicer-core)")


def require_slicer_core() -> None:
    try:
        import slicer
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    # PyPI also has an unrelated package called "slicer" (a dependency of shap).
    if not hasattr(slicer, "vtkMRMLScene"):
        raise ImportError(f"{INSTALL_HINT}; the 'slicer' package found ({slicer.__file__}) is "
                          "not slicer-core")
