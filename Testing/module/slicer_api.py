"""The Slicer API this project may use, with where each name was verified, and the MRML
methods it must not call.

`ALLOWED`: every slicer.* / qt.* / ctk.* / vtk.* name the module file, its in-Slicer test
helpers and UncertaintySegLib use, and the file (and line) of Slicer v5.10.0
(a2b6d082be, github.com/Slicer/Slicer) that defines it or, for Qt names that PythonQt
wraps, a Slicer 5.10 Python file that uses it the same way. A new name fails
test_slicer_names.py until it is checked in Slicer's source and added here.

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
UTIL = V510 + "Base/Python/slicer/util.py:"
SLM = V510 + "Base/Python/slicer/ScriptedLoadableModule.py:"
APP = V510 + "Base/QTCore/qSlicerCoreApplication.h (Q_PROPERTY / Q_INVOKABLE); used in "
PYQT = "Qt 5 through PythonQt; Slicer 5.10 uses it in "

ALLOWED = {
    "qt.QFileDialog.getSaveFileName": PYQT + "Modules/Scripted/ExtensionWizard/ExtensionWizard.py:261 (qt.QFileDialog static dialogs)",
    "qt.QTableWidgetItem": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:757",
    "qt.QTimer": PYQT + "Modules/Loadable/Segmentations/EditorEffects/Python/SegmentEditorEffects/AbstractScriptedSegmentEditorAutoCompleteEffect.py:55",
    "qt.Qt.Checked": PYQT + "SegmentEditorEffects/AbstractScriptedSegmentEditorAutoCompleteEffect.py:275",
    "qt.Qt.Unchecked": PYQT + "SegmentEditorEffects/AbstractScriptedSegmentEditorAutoCompleteEffect.py:275",
    "qt.Qt.ItemIsUserCheckable": PYQT + "Modules/Scripted/ExtensionWizard/ExtensionWizardLib/LoadModulesDialog.py:110",
    "qt.Qt.ItemIsEnabled": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:771 (qt.Qt.ItemFlag values)",
    "qt.Qt.ItemIsSelectable": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:771 (qt.Qt.ItemFlag values)",
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
    "slicer.mrmlScene": V510 + "Base/Python/slicer/__init__.py (set by the application); used everywhere",
    "slicer.mrmlScene.Clear": V510 + "Libs/MRML/Core/vtkMRMLScene.h:107",
    "slicer.mrmlScene.StartCloseEvent": V510 + "Libs/MRML/Core/vtkMRMLScene.h (SceneEventType); used in Modules/Scripted/Endoscopy/Endoscopy.py:100",
    "slicer.mrmlScene.EndCloseEvent": V510 + "vtkMRMLScene.h (SceneEventType); used in Modules/Scripted/LineProfile/LineProfile.py:127",
    "slicer.mrmlScene.NodeAddedEvent": V510 + "vtkMRMLScene.h:232; used as slicer.vtkMRMLScene.NodeAddedEvent in Modules/Scripted/DICOMLib/DICOMUtils.py:867",
    "slicer.parameterNodeWrapper.Choice": V510 + "Base/Python/slicer/parameterNodeWrapper/validators.py:126",
    "slicer.parameterNodeWrapper.WithinRange": V510 + "Base/Python/slicer/parameterNodeWrapper/validators.py:83",
    "slicer.parameterNodeWrapper.parameterNodeWrapper": V510 + "Base/Python/slicer/parameterNodeWrapper/wrapper.py:362",
    "slicer.util.VTKObservationMixin": UTIL + "2873",
    "slicer.util.arrayFromVolume": UTIL + "1764",
    "slicer.util.childWidgetVariables": UTIL + "376",
    "slicer.util.confirmOkCancelDisplay": UTIL + "3081",
    "slicer.util.errorDisplay": UTIL + "3068",
    "slicer.util.infoDisplay": UTIL + "3042",
    "slicer.util.loadLabelVolume": UTIL + "965",
    "slicer.util.loadUI": UTIL + "342",
    "slicer.util.loadVolume": UTIL + "997",
    "slicer.util.pip_install": UTIL + "3991",
    "slicer.util.resetSliceViews": UTIL + "1550",
    "slicer.util.resetThreeDViews": UTIL + "1543 (layoutManager().resetThreeDViews(): every 3D view there is, none when the layout has none)",
    "slicer.util.selectModule": UTIL + "1242",
    "slicer.util.startupEnvironment": UTIL + "98",
    "slicer.util.tryWithErrorDisplay": UTIL + "3368",
    "slicer.vtkMRMLCameraNode.Anterior": V510 + "Libs/MRML/Core/vtkMRMLCameraNode.h:179",
    "slicer.vtkMRMLCameraNode.Left": V510 + "Libs/MRML/Core/vtkMRMLCameraNode.h:178",
    "slicer.vtkMRMLCameraNode.Right": V510 + "Libs/MRML/Core/vtkMRMLCameraNode.h:177",
    "slicer.vtkMRMLCameraNode.Superior": V510 + "Libs/MRML/Core/vtkMRMLCameraNode.h:181",
    "slicer.vtkMRMLCrosshairNode": V510 + "Libs/MRML/Core/vtkMRMLCrosshairNode.h",
    "slicer.vtkMRMLDisplayableManagerGroup": V510 + "Libs/MRML/DisplayableManager/vtkMRMLDisplayableManagerGroup.h",
    "slicer.vtkMRMLScalarVolumeNode": V510 + "Libs/MRML/Core/vtkMRMLScalarVolumeNode.h",
    "slicer.vtkMRMLScene": V510 + "Libs/MRML/Core/vtkMRMLScene.h",
    "slicer.vtkMRMLSliceLogic": V510 + "Libs/MRML/Logic/vtkMRMLSliceLogic.h",
    "slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets": V510 + "Libs/MRML/Core/vtkMRMLSliceNode.h:260",
    "slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance": V510 + "Libs/MRML/DisplayableManager/vtkMRMLSliceViewDisplayableManagerFactory.h:51",
    "slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance": V510 + "Libs/MRML/DisplayableManager/vtkMRMLThreeDViewDisplayableManagerFactory.h:51",
    "slicer.vtkMRMLViewLogic": V510 + "Libs/MRML/Logic/vtkMRMLViewLogic.h",
    "slicer.vtkMRMLVolumeArchetypeStorageNode": V510 + "Libs/MRML/Core/vtkMRMLVolumeArchetypeStorageNode.h",
    "slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY": V510 + "Libs/vtkSegmentationCore/vtkSegmentation.h:120",
    "slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName": V510 + "Libs/vtkSegmentationCore/vtkSegmentationConverter.h:53 (static)",
    "slicer.vtkSlicerColorLogic.AddDefaultColorLegendDisplayNode": V510 + "Modules/Loadable/Colors/Logic/vtkSlicerColorLogic.h:54 (static, vtkMRMLDisplayableNode* overload)",
    "slicer.vtkMRMLColorLegendDisplayNode": V510 + "Modules/Loadable/Colors/MRML/vtkMRMLColorLegendDisplayNode.h:34; registered by vtkSlicerColorLogic::RegisterNodes (vtkSlicerColorLogic.cxx:47-57)",
    "slicer.vtkSlicerApplicationLogic": V510 + "Base/Logic/vtkSlicerApplicationLogic.h",
    "slicer.vtkSlicerMarkupsLogic": V510 + "Modules/Loadable/Markups/Logic/vtkSlicerMarkupsLogic.h",
    "slicer.vtkSlicerSegmentationsModuleLogic": V510 + "Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentationsModuleLogic.h",
    "slicer.vtkSlicerSubjectHierarchyModuleLogic": V510 + "Modules/Loadable/SubjectHierarchy/Logic/vtkSlicerSubjectHierarchyModuleLogic.h",
    "slicer.vtkSlicerVolumesLogic": V510 + "Modules/Loadable/Volumes/Logic/vtkSlicerVolumesLogic.h",
    "vtk.vtkCommand.ModifiedEvent": V510 + "Utilities/Templates/Modules/Scripted/TemplateKey.py:191 (the module template)",
    # The cohort worklist panel (UncertaintySegLib/worklist_panel.py), grepped in v5.10.0.
    "ctk.ctkCollapsibleButton": PYQT + "Applications/SlicerApp/Testing/Python/AtlasTests.py:55 (CTK widget)",
    "ctk.ctkPathLineEdit.Dirs": PYQT + "Modules/Scripted/DICOMPatcher/DICOMPatcher.py:60 (CTK widget)",
    "qt.QFormLayout": PYQT + "Applications/SlicerApp/Testing/Python/AtlasTests.py:60",
    "qt.QHBoxLayout": SLM + "147",
    "qt.QHeaderView.ResizeToContents": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:750",
    "qt.QLabel": PYQT + "Base/Python/slicer/tests/test_slicer_parameter_node_wrapper_guis.py:1163",
    "qt.QLineEdit": PYQT + "Base/Python/slicer/parameterNodeWrapper/guiCreation.py:210",
    "qt.QPushButton": PYQT + "Applications/SlicerApp/Testing/Python/AtlasTests.py:63",
    "qt.QTableView.SelectRows": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:747",
    "qt.QTableWidget": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:726 (subclassed)",
    "qt.Qt.ItemIsEditable": PYQT + "Modules/Scripted/DICOMLib/DICOMBrowser.py:771",
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
