"""The scene and the module logics the Lib works with.

Inside Slicer the application owns them (`SceneLogics.from_application` gathers
them); outside Slicer, under the slicer-core wheel, `create_headless_logics`
builds the same set. Either way the Lib classes receive them as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SceneLogics:
    """A scene with the logics the Lib needs (all Slicer/VTK objects)."""

    scene: object
    app_logic: object
    segmentations: object   # vtkSlicerSegmentationsModuleLogic
    markups: object         # vtkSlicerMarkupsLogic
    volumes: object         # vtkSlicerVolumesLogic
    subject_hierarchy: object

    @classmethod
    def from_application(cls) -> "SceneLogics":
        """The Slicer application's scene and module logics (call only inside Slicer).
        The module logics are bound to slicer.mrmlScene, so no other scene can be
        given (review #27)."""
        import slicer

        return cls(slicer.mrmlScene, slicer.app.applicationLogic(),
                   slicer.modules.segmentations.logic(), slicer.modules.markups.logic(),
                   slicer.modules.volumes.logic(), slicer.modules.subjecthierarchy.logic())


def _register(logic, name: str, scene, app_logic):
    logic.SetMRMLScene(scene)
    logic.SetMRMLApplicationLogic(app_logic)
    app_logic.SetModuleLogic(name, logic)
    return logic


def create_headless_logics(scene=None) -> SceneLogics:
    """Build a scene, an application logic and the module logics without the Slicer GUI.

    Order matters: the Segmentations module logic must exist before the first
    segmentation node is created, or closed surfaces are never made (it registers the
    representation converters); the Colors logic must be known to the application logic
    before a volume is added, or display nodes get no colour table.
    """
    import slicer
    from vtkmodules.vtkCommonCore import vtkCollection

    scene = scene or slicer.vtkMRMLScene()
    crosshair = slicer.vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)

    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colors = app_logic.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", colors)
    # In the application the Colors module registers the colour legend node class
    # (v5.10.0 vtkSlicerColorLogic.cxx:47-57, RegisterNodes); the heatmap's legend needs it.
    scene.RegisterNodeClass(slicer.vtkMRMLColorLegendDisplayNode())
    app_logic.SetSliceLogics(vtkCollection())
    app_logic.SetViewLogics(vtkCollection())
    # Views created later find the application logic through these factories.
    slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance().SetMRMLApplicationLogic(app_logic)
    slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance().SetMRMLApplicationLogic(app_logic)

    subject_hierarchy = _register(slicer.vtkSlicerSubjectHierarchyModuleLogic(), "SubjectHierarchy",
                                  scene, app_logic)
    segmentations = _register(slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations",
                              scene, app_logic)
    markups = _register(slicer.vtkSlicerMarkupsLogic(), "Markups", scene, app_logic)
    volumes = _register(slicer.vtkSlicerVolumesLogic(), "Volumes", scene, app_logic)
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    return SceneLogics(scene, app_logic, segmentations, markups, volumes, subject_hierarchy)


def nodes_by_class(scene, class_name: str) -> list:
    """The scene's nodes of a class, as a list.

    vtkMRMLScene::GetNodesByClass returns a collection the caller owns ("You are
    responsible for deleting the returned collection", vtkMRMLScene.h); Python's wrapper
    adds its own reference, so one UnRegister releases it, as slicer.util.getNodesByClass
    does (review #19). That helper cannot be used here: it ignores its scene argument.
    """
    collection = scene.GetNodesByClass(class_name)
    collection.UnRegister(None)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def remove_with_helpers(scene, node) -> None:
    """Remove a node with its display and storage nodes.

    vtkMRMLScene::RemoveNode does not cascade (v5.10.0 vtkMRMLScene.cxx:1519-1580), and
    AddArchetypeVolume adds a display and a storage node with each volume
    (vtkSlicerVolumesLogic.cxx:614-616): removing only the volume leaves both behind,
    and they would be saved with the scene (review m1).
    """
    if node is None or node.GetScene() is None:
        return
    helpers = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    scene.RemoveNode(node)
    for helper in [*helpers, storage]:
        if helper is not None and helper.GetScene() is not None:
            scene.RemoveNode(helper)
