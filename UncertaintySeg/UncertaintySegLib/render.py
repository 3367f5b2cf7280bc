"""Offscreen slice and 3D views of a scene, rendered by Slicer's displayable managers.

Works under the slicer-core wheel with VTK's EGL (or OSMesa) render window: no X server.
A view is a render window + renderer + a displayable manager group bound to a view node,
as the Slicer application builds them (without Qt). `render_to_array` returns RGB
pixels; `save_png` writes them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

SLICE_MANAGERS = ("vtkMRMLVolumeGlyphSliceDisplayableManager", "vtkMRMLModelSliceDisplayableManager",
                  "vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLMarkupsDisplayableManager",
                  "vtkMRMLCrosshairDisplayableManager", "vtkMRMLOrientationMarkerDisplayableManager",
                  "vtkMRMLScalarBarDisplayableManager")
THREED_MANAGERS = ("vtkMRMLCameraDisplayableManager", "vtkMRMLViewDisplayableManager",
                   "vtkMRMLModelDisplayableManager", "vtkMRMLSegmentationsDisplayableManager3D",
                   "vtkMRMLMarkupsDisplayableManager", "vtkMRMLOrientationMarkerDisplayableManager")


def _render_window(width: int, height: int, layers: int = 1):
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow

    # Without a display, VTK tries X first and logs "bad X server connection" before it
    # falls back to EGL: ask for EGL directly (VTK >= 9.4 reads this variable).
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    # Importing the OpenGL module registers the EGL / OSMesa / X render window factories.
    importlib.import_module("vtkmodules.vtkRenderingOpenGL2")

    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(width, height)
    window.SetNumberOfLayers(layers)
    renderer = vtkRenderer()
    window.AddRenderer(renderer)
    # Displayable managers (markups, crosshair) expect an interactor on the window; the
    # generic one needs no display server.
    from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

    interactor = vtkGenericRenderWindowInteractor()
    interactor.SetRenderWindow(window)
    return window, renderer


def _manager_group(factory_class, app_logic, renderer, names):
    import slicer

    factory = factory_class.GetInstance()
    factory.SetMRMLApplicationLogic(app_logic)
    for name in names:
        if not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    group = slicer.vtkMRMLDisplayableManagerGroup()
    group.Initialize(factory, renderer)
    return group


class OffscreenSliceView:
    """One slice view ("Red" = axial by default) rendered offscreen.

    The slice logic blends the volume layers into an image; the displayable managers draw
    segmentations, markups (ROI outlines) and the rest on top, as in Slicer.
    """

    def __init__(self, logics, name: str = "Red", orientation: str = "Axial",
                 size: tuple[int, int] = (512, 512)):
        import slicer
        from vtkmodules.vtkRenderingCore import vtkActor2D, vtkImageMapper

        self.window, self.renderer = _render_window(*size)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        self.logic = slicer.vtkMRMLSliceLogic()
        self.logic.SetMRMLApplicationLogic(logics.app_logic)
        self.logic.SetMRMLScene(logics.scene)
        logics.app_logic.GetSliceLogics().AddItem(self.logic)
        self.node = self.logic.AddSliceNode(name)
        self.node.SetOrientation(orientation)
        self.logic.ResizeSliceNode(*size)
        # The blended layers (background, foreground, label map) as one 2D image actor
        # behind everything, as Slicer's slice renderer shows them.
        mapper = vtkImageMapper()
        mapper.SetColorWindow(255)
        mapper.SetColorLevel(127.5)
        self.image_actor = vtkActor2D()
        self.image_actor.SetMapper(mapper)
        self.image_actor.GetProperty().SetDisplayLocationToBackground()
        self.renderer.AddViewProp(self.image_actor)
        self.managers = _manager_group(slicer.vtkMRMLSliceViewDisplayableManagerFactory,
                                       logics.app_logic, self.renderer, SLICE_MANAGERS)
        self.managers.SetMRMLDisplayableNode(self.node)

    @property
    def composite(self):
        return self.logic.GetSliceCompositeNode()

    def fit(self) -> None:
        """Fit the field of view to the background volume."""
        self.logic.FitSliceToBackground(*self.window.GetSize())

    def render(self) -> np.ndarray:
        self.image_actor.GetMapper().SetInputConnection(self.logic.GetImageDataConnection())
        self.managers.RequestRender()
        return render_to_array(self.window)


def add_slice_views(logics, views=(("Yellow", "Sagittal"), ("Green", "Coronal"))) -> list:
    """Slice nodes (with their logics, without windows) for views that are not rendered
    but should exist in a saved scene, e.g. the Yellow and Green views of a bundle."""
    import slicer

    nodes = []
    for name, orientation in views:
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLApplicationLogic(logics.app_logic)
        logic.SetMRMLScene(logics.scene)
        logics.app_logic.GetSliceLogics().AddItem(logic)
        node = logic.AddSliceNode(name)
        node.SetOrientation(orientation)
        nodes.append(node)
    return nodes


class OffscreenThreeDView:
    """One 3D view rendered offscreen (segment closed surfaces, ROI boxes)."""

    def __init__(self, logics, name: str = "1", size: tuple[int, int] = (512, 512)):
        import slicer

        self.window, self.renderer = _render_window(*size)
        self.logic = slicer.vtkMRMLViewLogic()
        # The logic finds its view and camera nodes by layout name.
        self.logic.SetName(name)
        self.logic.SetMRMLApplicationLogic(logics.app_logic)
        self.logic.SetMRMLScene(logics.scene)
        logics.app_logic.GetViewLogics().AddItem(self.logic)
        self.node = self.logic.AddViewNode(name)
        self.node.SetBoxVisible(False)
        self.node.SetAxisLabelsVisible(False)
        self.managers = _manager_group(slicer.vtkMRMLThreeDViewDisplayableManagerFactory,
                                       logics.app_logic, self.renderer, THREED_MANAGERS)
        self.managers.SetMRMLDisplayableNode(self.node)

    def set_background(self, rgb=(0.0, 0.0, 0.0)) -> None:
        self.node.SetBackgroundColor(*rgb)
        self.node.SetBackgroundColor2(*rgb)

    def look_from(self, direction: str = "Anterior", elevation: float = 25.0,
                  nodes=()) -> None:
        """Place the camera on one side, tilted up by `elevation`, framing `nodes`
        (displayable nodes, e.g. the segmentation and the ROIs; default: what the
        renderer can measure, which leaves out markups widgets)."""
        import slicer

        axes = {"Anterior": slicer.vtkMRMLCameraNode.Anterior, "Left": slicer.vtkMRMLCameraNode.Left,
                "Right": slicer.vtkMRMLCameraNode.Right,
                "Superior": slicer.vtkMRMLCameraNode.Superior}
        self.logic.GetCameraNode().RotateTo(axes[direction])
        # Render once first: the displayable managers build their actors on render.
        self.window.Render()
        bounds = union_bounds(nodes)
        camera = self.renderer.GetActiveCamera()
        camera.Elevation(elevation)
        camera.OrthogonalizeViewUp()
        if bounds is None:
            self.renderer.ResetCamera()
        else:
            # ResetCamera fits the bounding sphere of the box, which leaves a wide margin.
            self.renderer.ResetCamera(bounds)
            camera.Zoom(1.4)

    def render(self) -> np.ndarray:
        self.managers.RequestRender()
        return render_to_array(self.window)


def union_bounds(nodes) -> list[float] | None:
    """RAS bounds [xmin, xmax, ymin, ymax, zmin, zmax] around displayable nodes."""
    boxes = []
    for node in nodes:
        bounds = [0.0] * 6
        node.GetRASBounds(bounds)
        if bounds[0] <= bounds[1]:
            boxes.append(bounds)
    if not boxes:
        return None
    array = np.array(boxes)
    return [float(array[:, 0].min()), float(array[:, 1].max()), float(array[:, 2].min()),
            float(array[:, 3].max()), float(array[:, 4].min()), float(array[:, 5].max())]


def render_to_array(window) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a render window, top row first."""
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])


def save_png(pixels: np.ndarray, path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG (VTK's writer: no extra dependency)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkIOImage import vtkPNGWriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width, channels = pixels.shape
    image = vtkImageData()
    image.SetDimensions(width, height, 1)
    scalars = numpy_to_vtk(np.ascontiguousarray(pixels[::-1]).reshape(-1, channels), deep=True)
    image.GetPointData().SetScalars(scalars)
    writer = vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path
