"""The Slicer API this project may use, with where each name was verified, and the MRML
methods it must not call.

`ALLOWED`: the slicer.* names the module file, its in-Slicer test helpers and
UncertaintySegLib use that no metadata holds (the application object, module
registry, ScriptedLoadableModule, i18n), each with the file (and line) of Slicer
v5.10.0 (a2b6d082be, github.com/Slicer/Slicer) that defines it. Every other qt.*,
ctk.*, vtk.*, slicer.vtk*, slicer.util.*, slicer.parameterNodeWrapper.* and
slicer.mrmlScene.* name is checked against real metadata instead (metadata.verified:
PyQt5, slicer_metadata.json, the slicer-core wheel). A new name fails
test_slicer_names.py until one of the two knows it.

`NEWER_THAN_5_10`: method names declared in the headers of Libs/MRML, Libs/MRML/Logic,
Libs/vtkSegmentationCore and Modules/Loadable/*/{Logic,MRML} on Slicer's main branch
(583e9b37d5, the slicer-core 5.13 wheel's API) but nowhere in the same headers of
v5.10.0: the wheel has them, Slicer 5.10 does not. Made by scanning the declarations
(methods and vtkGet/Set/Boolean macros) of both trees; a name listed by mistake only
makes the check stricter.

`NOT_IN_5_8`: vtkSegment's terminology conveniences, added by commit 49a251067d
(2025-03-05) after v5.8.1 (review finding #4): in 5.10, but `loadOutputFolder` is
kept working on older Slicer, where the module still loads, with SetTag instead.
"""

V510 = "Slicer v5.10.0 "
SLM = V510 + "Base/Python/slicer/ScriptedLoadableModule.py:"
APP = V510 + "Base/QTCore/qSlicerCoreApplication.h (Q_PROPERTY / Q_INVOKABLE); used in "
PYQT = "Qt 5 through PythonQt; Slicer 5.10 uses it in "

ALLOWED = {
    "slicer.ScriptedLoadableModule.ScriptedLoadableModule": SLM + "17",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleWidget": SLM + "88",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleLogic": SLM + "296",
    "slicer.ScriptedLoadableModule.ScriptedLoadableModuleTest": SLM + "367",
    "slicer.app.applicationLogic": APP + "Applications/SlicerApp/Testing/Python/SlicerMRBMultipleSaveRestoreTest.py:122",
    "slicer.app.layoutManager": V510 + "Base/QTGUI/qSlicerApplication.h; used in Applications/SlicerApp/Testing/Python/CurvedPlanarReformation.py:93",
    "slicer.app.majorVersion": APP + "Modules/Scripted/WebServer/WebServerLib/SlicerRequestHandler.py:808 (qSlicerCoreApplication.h:94)",
    "slicer.app.minorVersion": APP + "Modules/Scripted/WebServer/WebServerLib/SlicerRequestHandler.py:809 (qSlicerCoreApplication.h:95)",
    "slicer.app.processEvents": PYQT + "Applications/SlicerApp/Testing/Python/CLIEventTest.py:248 (QCoreApplication)",
    "slicer.app.temporaryPath": APP + "Applications/SlicerApp/Testing/Python/JRC2013Vis.py:90 (qSlicerCoreApplication.h:78)",
    "slicer.app.testingEnabled": APP + "Applications/SlicerApp/Testing/Python/SlicerScriptedFileReaderWriterTest.py:47",
    "slicer.i18n.tr": V510 + "Base/Python/slicer/i18n.py:52",
    "slicer.i18n.translate": V510 + "Base/Python/slicer/i18n.py:9",
    "slicer.modules.markups.logic": V510 + "Base/QTCore/qSlicerAbstractCoreModule.h:287 logic(); used in Applications/SlicerApp/Testing/Python/RSNAQuantTutorial.py:195",
    "slicer.modules.segmentations.logic": V510 + "qSlicerAbstractCoreModule.h:287; used in Applications/SlicerApp/Testing/Python/SlicerBoundsTest.py:163",
    "slicer.modules.segmenteditor.widgetRepresentation": V510 + "used in Modules/Loadable/Markups/Testing/Python/NeurosurgicalPlanningTutorialMarkupsSelfTest.py:240",
    "slicer.modules.subjecthierarchy.logic": V510 + "qSlicerAbstractCoreModule.h:287; the module: Modules/Loadable/SubjectHierarchy/Testing/Python/SubjectHierarchyCorePluginsSelfTest.py:91",
    "slicer.modules.volumes.logic": V510 + "qSlicerAbstractCoreModule.h:287; used in Applications/SlicerApp/Testing/Python/CurvedPlanarReformation.py:128",
}

NEWER_THAN_5_10 = frozenset("""
    BuildLineDirectionMarkers CanDeletePathInCache CanonicalizePath 
    CollectCachedFilesRecursively ConvertITKLinearTransformFrom2Dto3D CreateSentinelFile 
    CreateSentinelFileInDirectory EditorTranslationSliceAnywhereEnabledOff 
    EditorTranslationSliceAnywhereEnabledOn FindTextFiles FlipNormal GetCacheEntries 
    GetCachedFilesInDirectory GetCoordinateUnitScaleFromFileHeader 
    GetEditorTranslationSliceAnywhereEnabled GetEditorTranslationSliceAnywhereSensitivity 
    GetGlyphResolution2D GetGlyphTipLengthPercent2D GetInteractionHandleOpacity 
    GetLineDirectionFirstToLastControlPoint GetLineDirectionMarkerScale 
    GetLineDirectionMarkerSpacingScale GetLineDirectionVisibility 
    GetLineDirectionVisibility2D GetLineDirectionVisibility3D 
    GetLineSliceIntersectionPointVisibility GetMappingMode GetMarkupsOcclusionEnabled 
    GetPrivateStorableNodesDirectory GetPrivateStorableNodesModifiedSinceRead 
    GetSentinelFileName GetSentinelFilePath GetTransformedImageData GetWindowMappingMethod 
    GetWindowMappingMethodAsString GetWindowMappingMethodFromIndex 
    GetWindowMappingMethodFromString HasSentinelFile HasSentinelFileInDirectory 
    IsDirectoryEmpty JoinPath LineDirectionFirstToLastControlPointOff 
    LineDirectionFirstToLastControlPointOn LineDirectionVisibility2DOff 
    LineDirectionVisibility2DOn LineDirectionVisibility3DOff LineDirectionVisibility3DOn 
    LineDirectionVisibilityOff LineDirectionVisibilityOn 
    LineSliceIntersectionPointVisibilityOff LineSliceIntersectionPointVisibilityOn 
    Matrix2Dto3D PathIsWithinDirectory PruneCache SavePrivateStorableNodes ScalePointSet 
    SetEditorTranslationSliceAnywhereEnabled SetEditorTranslationSliceAnywhereSensitivity 
    SetGlyphResolution2D SetGlyphTipLengthPercent2D SetInteractionHandleOpacity 
    SetLineDirectionFirstToLastControlPoint SetLineDirectionMarkerScale 
    SetLineDirectionMarkerSpacingScale SetLineDirectionVisibility 
    SetLineDirectionVisibility2D SetLineDirectionVisibility3D 
    SetLineSliceIntersectionPointVisibility SetMappingMode SetMarkupsOcclusionEnabled 
    SetVTKOrientedGridTransformFrom2DITKImage SetWindowMappingMethod 
""".split())

NOT_IN_5_8 = frozenset({"SetTerminology", "GetTerminology", "HasTerminology"})
