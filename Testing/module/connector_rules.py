"""The rules of Slicer's parameterNodeWrapper GUI connectors, applied to the module's
parameter node and .ui without Slicer.

Source: Base/Python/slicer/parameterNodeWrapper/guiConnectors.py of Slicer v5.10.0
(line numbers below); `createGuiConnector` (L126-146) takes the first registered
connector whose `canRepresent(widget, type)` is true and lets its errors through, so
`connectGui` in the module's setup() raises on the first broken binding and the panel
stays dead (review finding #1).

    python Testing/module/connector_rules.py [UncertaintySeg.py [UncertaintySeg.ui]]

prints the problems of any copy of the module (e.g. one taken from an older commit).
"""

from __future__ import annotations

import pathlib
import sys

if __name__ == "__main__":  # run as a script: the module folder and this folder first
    sys.path[:0] = [str(pathlib.Path(__file__).resolve().parents[2] / "UncertaintySeg"),
                    str(pathlib.Path(__file__).resolve().parent)]

from module_source import (MODULE_FILE, UI_FILE, Choice, Maximum, Minimum,  # noqa: E402
                           MRMLNode, WithinRange, bound_widgets, parameters)

# widget class -> the value types some connector accepts (canRepresent, v5.10.0)
ACCEPTS = {
    "QCheckBox": {bool}, "ctkCheckBox": {bool},                     # L162-165
    "QPushButton": {bool}, "ctkCheckablePushButton": {bool},        # L195-198, L231-234
    "QSlider": {int}, "QSpinBox": {int},                            # L276-279
    "QDoubleSpinBox": {float, int}, "ctkSliderWidget": {float, int},  # L340-346
    "qMRMLSliderWidget": {float, int}, "ctkDoubleSlider": {float, int},
    "ctkDoubleSpinBox": {float, int}, "qMRMLSpinBox": {float, int},
    "QComboBox": {int, float, str, bool}, "ctkComboBox": {int, float, str, bool},  # L418-423
    "QLineEdit": {str}, "QLabel": {str}, "QTextEdit": {str},        # L515-518, 551-554, 584-587
    "ctkPathLineEdit": {pathlib.Path}, "ctkDirectoryButton": {pathlib.Path},  # L673-680, 709-716
    "qMRMLNodeComboBox": {MRMLNode},                                # L745-748
}
# Connectors that raise without bounds: QSlider (L306-307), ctkSliderWidget and
# qMRMLSliderWidget (L379-380).
MUST_BE_BOUNDED = {"QSlider", "ctkSliderWidget", "qMRMLSliderWidget"}
# Connectors that, without bounds, overwrite the .ui limits with +-2**31 (int, L310-321)
# or +-inf (float, L382-393): the user could then type a negative box size.
OVERWRITES_LIMITS = {"QSpinBox", "QDoubleSpinBox", "ctkDoubleSpinBox", "qMRMLSpinBox",
                     "ctkDoubleSlider"}
COMBO_BOXES = {"QComboBox", "ctkComboBox"}


def _binding_problems(widget, parameter) -> list[str]:
    where = f"{widget.name} ({widget.widget_class}) -> {parameter.name}"
    accepted = ACCEPTS.get(widget.widget_class)
    if accepted is None:
        return [f"{where}: no rule for this widget class; add it from guiConnectors.py"]
    if parameter.kind not in accepted:
        return [f"{where}: {parameter.kind.__name__} cannot be connected (createGuiConnector "
                "raises 'Unable to create GUI connector')"]
    problems = []
    choice, bounds = parameter.first(Choice), parameter.first(WithinRange)
    low, high = parameter.first(Minimum), parameter.first(Maximum)
    if bounds is None and low is not None and high is not None:
        # isBounded = withinRange or (minimum and maximum): guiConnectors.py L303-304, L376-377
        bounds = WithinRange(low.minimum, high.maximum)
    if widget.widget_class in COMBO_BOXES:
        if choice is None:
            problems.append(f"{where}: a combo box needs Annotated[..., Choice([...])] "
                            "(QComboBoxToStringableConnector.create L431 raises)")
        elif parameter.default not in choice.choices:
            problems.append(f"{where}: default {parameter.default!r} is not a choice")
    if widget.widget_class in MUST_BE_BOUNDED | OVERWRITES_LIMITS:
        if bounds is None:
            why = ("raises 'Cannot have a connection ... unbounded'"
                   if widget.widget_class in MUST_BE_BOUNDED else "overwrites the .ui limits")
            problems.append(f"{where}: needs Annotated[..., WithinRange(low, high)]: the "
                            f"connector {why}")
        else:
            problems += _bounds_problems(where, widget, parameter, bounds)
    return problems


def _bounds_problems(where, widget, parameter, bounds) -> list[str]:
    problems = []
    if parameter.kind is int and not all(isinstance(v, int) for v in
                                         (bounds.minimum, bounds.maximum)):
        problems.append(f"{where}: int bounds must be ints (QSpinBox.setRange(int, int))")
    if not bounds.minimum <= parameter.default <= bounds.maximum:
        problems.append(f"{where}: default {parameter.default} outside {bounds}")
    ui = (widget.properties.get("minimum"), widget.properties.get("maximum"))
    if ui != (None, None) and ui != (bounds.minimum, bounds.maximum):
        problems.append(f"{where}: the .ui says {ui}, the parameter {bounds}: the connector "
                        "applies the parameter's; make the .ui say the same")
    return problems


def problems(module_file=MODULE_FILE, ui_file=UI_FILE) -> list[str]:
    """Every broken binding between the .ui and the parameter node."""
    params = parameters(module_file)
    found = []
    for widget in bound_widgets(ui_file):
        if widget.parameter not in params:
            # wrapper.py _connectParametersToGui -> _checkParamName raises
            found.append(f"{widget.name}: SlicerParameterName {widget.parameter!r} is not a "
                         "parameter of the node")
            continue
        found += _binding_problems(widget, params[widget.parameter])
    return found


if __name__ == "__main__":
    listed = problems(*sys.argv[1:3])
    print("\n".join(listed) or "no problems")
    sys.exit(1 if listed else 0)
