"""The one description of the run parameters: argparse, checks and argv all from it."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from uncertaintyseg.commands import cli
from uncertaintyseg import options
from uncertaintyseg.errors import InputError
from uncertaintyseg.options import OPTIONS, check, to_argv
from uncertaintyseg.run.pipeline import Settings
from uncertaintyseg.run.predict import settings_from

PACKAGE = Path(options.__file__).parent


def _predict_parser():
    parser = cli.build_parser()
    return parser, ["predict", "--case", "c", "--out", "o"]


def test_every_option_is_a_predict_flag_with_its_default():
    parser, base = _predict_parser()
    args = parser.parse_args(base)
    for option in OPTIONS.values():
        assert getattr(args, option.name) == option.default, option.name


@pytest.mark.parametrize("name,value", [
    ("radius", 1e9), ("radius", 0.0), ("kernel_mm", (0.5, 0.5, 0.5)),
    ("kernel_mm", (32.0, 32.0, 1000.0)), ("max_overlap", 1.5), ("min_score_fraction", -0.1),
    ("max_boxes", 65), ("batch_size_2d", 0), ("threads", 0), ("projections", 0),
    ("projections", 5000), ("projections", "fast"), ("device", "tpu"),
    ("min_component_fraction", 2.0)])
def test_out_of_range_values_name_the_flag(name, value):
    with pytest.raises(InputError, match=OPTIONS[name].flag):
        check(name, value)


def test_settings_checks_every_option_field():
    with pytest.raises(InputError, match="--radius"):
        Settings(radius=1e9)
    with pytest.raises(InputError, match="--kernel-mm"):
        Settings(kernel_mm=(0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="--kernel-mm"):
        Settings(kernel_mm=(32.0, 32.0))


def test_settings_defaults_are_the_options_defaults():
    # Each Settings field that is an option takes the option's default: the same run
    # from the library (predict.run(case, {})) as from the command line.
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    shared = [name for name in OPTIONS if name in fields]
    assert len(shared) == len(OPTIONS) - 1  # every option but --model, a model's name
    for name in shared:
        assert fields[name].default == OPTIONS[name].default, name


def test_cli_defaults_make_the_default_settings():
    parser, base = _predict_parser()
    assert settings_from(options.from_namespace(parser.parse_args(base))) == Settings()


def test_settings_are_frozen_and_keep_auto_as_asked():
    settings = Settings(projections="auto", device="cpu")
    assert settings.projections == "auto"  # resolved by devices.resolve_run, not here
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.projections = 16
    changed = dataclasses.replace(settings, max_boxes=3)
    assert changed.max_boxes == 3 and settings.max_boxes == 8
    with pytest.raises(InputError, match="--max-boxes"):
        dataclasses.replace(settings, max_boxes=100)  # replace checks again


def test_to_argv_sends_only_what_was_set_and_parses_back():
    values = {name: option.default for name, option in OPTIONS.items()}
    assert to_argv(values) == []
    values.update(kernel_mm=(20.0, 24.5, 48.0), max_boxes=3, projections=32, device="cpu",
                  postprocess=False, radius=60.0)
    argv = to_argv(values)
    assert "--max-overlap" not in argv and "--model" not in argv
    parser, base = _predict_parser()
    parsed = options.from_namespace(parser.parse_args(base + argv))
    assert parsed["kernel_mm"] == (20.0, 24.5, 48.0)
    assert parsed["max_boxes"] == 3 and parsed["radius"] == 60.0
    assert parsed["postprocess"] is False and parsed["device"] == "cpu"
    assert options.parse_projections(parsed["projections"]) == 32


def test_free_text_options_pass_through():
    assert check("model", "phantom") == "phantom"
    assert to_argv({"model": "/models/my model"}) == ["--model", "/models/my model"]


def test_to_argv_refuses_an_out_of_range_value():
    with pytest.raises(InputError, match="--max-boxes"):
        to_argv({"max_boxes": 100})


def test_bad_value_stops_before_the_model_or_the_case_is_loaded(tmp_path, monkeypatch, capsys):
    import uncertaintyseg.networks.models as models

    def fail(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(models, "load_model", fail)
    out = tmp_path / "out"
    code = cli.main(["predict", "--case", str(tmp_path / "no-such-case"), "--out", str(out),
                     "--kernel-mm", "0.5", "0.5", "0.5", "--progress", "none"])
    assert code == cli.EXIT_INPUT_ERROR
    assert "--kernel-mm 0.5: must be in [4, 256] mm" in capsys.readouterr().err
    assert not out.exists()


def test_options_and_errors_import_only_the_standard_library():
    # The Slicer module imports options before torch/SimpleITK exist in Slicer's Python.
    code = ("import sys; sys.path.insert(0, %r); import uncertaintyseg.options; "
            "bad = {'torch', 'numpy', 'SimpleITK', 'nibabel', 'nnunetv2'} & set(sys.modules); "
            "print(sorted(bad))" % str(PACKAGE.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _imported_modules(path: Path) -> set[str]:
    """The package modules a file imports, by their last name (`from ..run.predict import`
    and `from ..run import predict` both give "predict")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.update((node.module or "").split("."))
            names.update(alias.name for alias in node.names)
    return names


def test_demo_and_validation_do_not_import_the_cli():
    # One prediction entry point (predict.py) ended the cli <-> demo import cycle.
    assert "cli" not in _imported_modules(PACKAGE / "commands" / "demo.py")
    assert "cli" not in _imported_modules(PACKAGE / "run" / "predict.py")
    assert "predict" in _imported_modules(PACKAGE / "commands" / "demo.py")
