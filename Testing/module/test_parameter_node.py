"""The parameter node and the .ui against parameterNodeWrapper's connector rules
(connector_rules.py cites Slicer v5.10.0 guiConnectors.py line by line)."""

from __future__ import annotations

import re

import pytest

from connector_rules import problems
from module_source import (MODULE_DIR, MODULE_FILE, UI_FILE, Choice, WithinRange, bound_widgets,
                           parameters, ui_attributes_used, ui_widget_names)
from uncertaintyseg_shared.options import OPTIONS


def test_every_binding_follows_the_connector_rules():
    assert problems() == []


def _mutated(tmp_path, pattern, replacement, ui=False):
    """A copy of the module (and .ui) with one edit, for checking that a rule fires."""
    source, layout = MODULE_FILE.read_text(encoding="utf-8"), UI_FILE.read_text(encoding="utf-8")
    text = layout if ui else source
    changed, count = re.subn(pattern, replacement, text)
    assert count == 1, f"the edit {pattern!r} did not apply once"
    (tmp_path / "m.py").write_text(source if ui else changed)
    (tmp_path / "m.ui").write_text(changed if ui else layout)
    return problems(tmp_path / "m.py", tmp_path / "m.ui")


@pytest.mark.rule_self_test
@pytest.mark.parametrize("pattern, replacement, expected", [
    # review #1: a combo box bound to a plain str
    (r"modelName: Annotated\[str, Choice\(\[[^]]*\]\)\]", "modelName: str",
     "modelComboBox (QComboBox) -> modelName: a combo box needs"),
    # review #2: a ctkSliderWidget bound to an unbounded float
    (r"heatmapThreshold: Annotated\[float, WithinRange\(0\.0, 1\.0\)\]", "heatmapThreshold: float",
     "thresholdSliderWidget (ctkSliderWidget) -> heatmapThreshold: needs Annotated"),
    # review #7: a spin box whose .ui limits the connector would overwrite
    (r"maxBoxes: Annotated\[int, _range\(\"max_boxes\"\)\]", "maxBoxes: int",
     "maxBoxesSpinBox (QSpinBox) -> maxBoxes: needs Annotated"),
    (r"region: Annotated\[str, Choice\(\[\"WT\", \"TC\", \"ET\"\]\)\] = \"WT\"",
     'region: Annotated[str, Choice(["TC", "ET"])] = "WT"', "default 'WT' is not a choice"),
    (r"useModelKernels: bool = True", "useModelKernels: str = 'yes'",
     "useModelKernelsCheckBox (QCheckBox) -> useModelKernels: str cannot be connected"),
])
def test_each_rule_fires_on_the_mistake_it_is_for(tmp_path, pattern, replacement, expected):
    assert any(expected in p for p in _mutated(tmp_path, pattern, replacement)), expected


@pytest.mark.rule_self_test
def test_ui_limits_that_differ_from_the_parameter_are_reported(tmp_path):
    found = _mutated(tmp_path, r"(<widget class=\"QSpinBox\" name=\"maxBoxesSpinBox\">\s*"
                     r"<property name=\"minimum\">\s*<number>)0", r"\g<1>1", ui=True)
    assert any("maxBoxesSpinBox" in p and "the .ui says (1.0, 64.0)" in p for p in found)


@pytest.mark.rule_self_test
def test_unknown_parameter_name_in_the_ui_is_reported(tmp_path):
    found = _mutated(tmp_path, r"<string>maxOverlap</string>", "<string>maxOverlapp</string>",
                     ui=True)
    assert any("'maxOverlapp' is not a parameter" in p for p in found)


def test_ranges_and_choices_are_the_command_lines():
    params = parameters()
    for name, option in (("kernelEt", "kernel_mm"), ("kernelTc", "kernel_mm"),
                         ("kernelWt", "kernel_mm"), ("maxOverlap", "max_overlap"),
                         ("minScoreFraction", "min_score_fraction"), ("maxBoxes", "max_boxes")):
        bounds = params[name].first(WithinRange)
        assert (bounds.minimum, bounds.maximum) == OPTIONS[option].bounds, name
    for name in ("maxOverlap", "minScoreFraction", "maxBoxes", "device", "projections",
                 "method"):
        option = {"maxOverlap": "max_overlap", "minScoreFraction": "min_score_fraction",
                  "maxBoxes": "max_boxes"}.get(name, name)
        assert params[name].default == OPTIONS[option].default, name
    for name in ("device", "projections", "method"):
        assert tuple(params[name].first(Choice).choices) == OPTIONS[name].choices
    assert params["useModelKernels"].default is True  # the model's own cube sizes


def test_model_choices_exist():
    choices = parameters()["modelName"].first(Choice).choices
    assert choices[0] == "default"  # the pipeline's default model (no --model sent)
    bundled = {p.parent.name for p in (MODULE_DIR / "Resources" / "Models").glob("*/model.json")}
    assert set(choices) - {"default", "analytic"} <= bundled  # analytic is built in


def test_every_ui_name_the_module_uses_exists_and_every_parameter_is_shown():
    assert ui_attributes_used() - ui_widget_names() == set()
    bound = {w.parameter for w in bound_widgets()}
    # modelFolder and python are synced by hand: the path connector takes pathlib types only.
    assert set(parameters()) - bound == {"modelFolder", "python"}
