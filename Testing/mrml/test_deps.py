"""Dependency decisions inside Slicer: versions, the order of installers, what is skipped.

No package is installed: the installers are recorders over an in-memory set of installed
versions, and they change it as pip, the PyTorch and the NNUNet extensions would.
"""

from __future__ import annotations

import importlib.metadata

import pytest

from UncertaintySegLib.deps import (REQUIREMENTS, DependencyError, Installers,
                                    UnsupportedSlicerError, check_slicer_python,
                                    ensure_dependencies, plan_dependencies, torch_requirement)

# What nnunetv2 2.8.1's metadata lists (importlib.metadata.requires), abridged.
NNUNET_REQUIRES = ["torch>=2.1.2", "acvl-utils<0.3,>=0.2.3", "SimpleITK>=2.2.1", "requests",
                   "batchgenerators>=0.25.1", "dynamic-network-architectures<0.5,>=0.4.1",
                   "pytest; extra == \"dev\""]
EVERYTHING = {"torch": "2.5.1+cu121", "nnunetv2": "2.6.2", "pyswarms": "1.3.0",
              "numpy": "2.0.2", "scipy": "1.14.1", "SimpleITK": "2.5.2", "nibabel": "5.3.2",
              "tqdm": "4.67.1", "matplotlib": "3.9.2", "filelock": "4.3.1",
              "torchvision": "0.20.1", "openvino": "2025.3.0", "onnx": "1.19.0"}
# Further down the chain (dynamic-network-architectures 0.4.x and timm 1.0's metadata,
# abridged): a plain `pip install` of these brings torch from PyPI (review W1).
REQUIRES = {"nnunetv2": NNUNET_REQUIRES,
            "dynamic-network-architectures": ["torch>=1.6.0a", "numpy", "timm<1.0.23",
                                              "einops"],
            "timm": ["torch", "torchvision", "pyyaml", "huggingface_hub", "safetensors"],
            "acvl-utils": ["numpy", "batchgenerators", "connected-components-3d"],
            "pyswarms": ["scipy", "numpy", "matplotlib>=1.3.1", "attrs", "tqdm", "future",
                         "pyyaml"]}
PY312 = (3, 12, 10)


class Slicer:
    """Installed versions and the installers, recording calls in order."""

    def __init__(self, installed, torch_extension=True, nnunet_extension=False, answer=True):
        self.installed = dict(installed)
        self.calls, self.questions = [], []
        self.torch_extension, self.nnunet_extension, self.answer = (
            torch_extension, nnunet_extension, answer)

    def installers(self) -> Installers:
        return Installers(confirm=self.confirm, pip_install=self.pip, torch_logic=self.torch_logic,
                          nnunet_installer=self.nnunet, requires=self.requires,
                          version=self.installed.get)

    def confirm(self, text):
        self.questions.append(text)
        return self.answer

    def requires(self, name):
        if name not in self.installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return REQUIRES.get(name)

    def pip(self, args):
        self.calls.append(("pip", tuple(args)))
        for arg in args:
            if not arg.startswith("-"):
                name = arg.split(">")[0].split("<")[0].split("=")[0]
                self.installed[name] = {"nnunetv2": "2.8.1"}.get(name, "99.0")

    def torch_logic(self):
        if not self.torch_extension:
            return None
        outer = self

        class Logic:
            def installTorch(self, askConfirmation=False, torchVersionRequirement=None):
                outer.calls.append(("installTorch", askConfirmation, torchVersionRequirement))
                outer.installed["torch"] = "2.6.0+cpu"
                outer.installed["torchvision"] = "0.21.0+cpu"
                return object()
        return Logic()

    def nnunet(self):
        if not self.nnunet_extension:
            return None
        outer = self

        class InstallLogic:
            def setupPythonRequirements(self, requirement):
                outer.calls.append(("SlicerNNUNet", requirement))
                outer.installed["nnunetv2"] = "2.8.1"
                return True
        return InstallLogic()


def test_versions_are_checked_not_only_presence():
    plan = plan_dependencies({**EVERYTHING, "SimpleITK": "2.2.1", "nnunetv2": None}.get)
    assert [u.describe() for u in plan.unmet] == ["nnunetv2>=2.5 (not installed)",
                                                 "SimpleITK>=2.3 (2.2.1 installed)"]
    assert plan_dependencies(EVERYTHING.get).empty  # a local "+cu121" build still counts


def test_old_python_says_which_slicer_is_needed():
    check_slicer_python(PY312)
    with pytest.raises(UnsupportedSlicerError, match=r"needs 3D Slicer 5\.10 or newer.*"
                       r"Slicer 5\.8\.1 runs Python 3\.9"):
        check_slicer_python((3, 9, 10), "5.8.1")
    slicer = Slicer({}, torch_extension=True)
    with pytest.raises(UnsupportedSlicerError, match="5.10"):
        ensure_dependencies(slicer.installers(), version_info=(3, 9, 10))
    assert slicer.questions == [] and slicer.calls == []


def test_nothing_missing_means_no_question():
    slicer = Slicer(EVERYTHING)
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    assert slicer.questions == [] and slicer.calls == []


def test_torch_comes_first_and_pip_never_resolves_dependencies():
    """Review W1: without the NNUNet extension, torch is installed by the PyTorch
    extension before anything else, and every pip call is `--no-deps`, so that
    dynamic-network-architectures and timm cannot pull torch from PyPI."""
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k not in ("torch", "nnunetv2",
                                                                        "pyswarms")})
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    assert "PyTorch comes first" in slicer.questions[0]
    assert "nnunetv2>=2.5" in slicer.questions[0]
    assert slicer.calls[0] == ("installTorch", False, ">=2.3")
    pips = [args for kind, *args in slicer.calls if kind == "pip"]
    assert all(args[0][1:] == ("--no-deps",) for args in pips)
    installed = [args[0][0] for args in pips]
    # Depth first: nnU-Net, then its requirements and theirs, then our own.
    assert installed[:2] == ["nnunetv2>=2.5", "acvl-utils<0.3,>=0.2.3"]
    assert "timm<1.0.23" in installed and "connected-components-3d" in installed
    assert installed.index("timm<1.0.23") > installed.index(
        "dynamic-network-architectures<0.5,>=0.4.1")
    assert installed[-1] == "future" and "pyswarms>=1.3" in installed
    names = [text.split("<")[0].split(">")[0].split("=")[0].lower() for text in installed]
    assert not {"torch", "torchvision", "simpleitk", "requests", "numpy", "pytest"} & set(names)
    assert len(names) == len(set(names))  # each package once


def test_torch_already_there_is_not_reinstalled():
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k != "nnunetv2"})
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    assert all(kind == "pip" for kind, *_ in slicer.calls)
    assert slicer.calls[0] == ("pip", ("nnunetv2>=2.5", "--no-deps"))


def test_nnunet_extension_installer_is_used_when_present():
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k != "nnunetv2"},
                    nnunet_extension=True)
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    assert slicer.calls == [("SlicerNNUNet", "nnunetv2>=2.5")]


def test_missing_pytorch_extension_is_named_before_any_question():
    slicer = Slicer({}, torch_extension=False)
    with pytest.raises(DependencyError, match="requires the PyTorch extension.*Extensions Manager"):
        ensure_dependencies(slicer.installers(), version_info=PY312)
    assert slicer.questions == [] and slicer.calls == []


def test_too_old_simpleitk_of_slicer_is_not_replaced_by_pip():
    slicer = Slicer({**EVERYTHING, "SimpleITK": "2.2.1"})
    with pytest.raises(UnsupportedSlicerError, match=r"SimpleITK>=2\.3 \(2\.2\.1 installed\)"):
        ensure_dependencies(slicer.installers(), version_info=PY312)
    assert slicer.calls == []


def test_declining_or_testing_mode_installs_nothing():
    slicer = Slicer({}, answer=False)
    assert not ensure_dependencies(slicer.installers(), version_info=PY312)
    with pytest.raises(DependencyError, match="testing mode"):
        ensure_dependencies(slicer.installers(), testing=True, version_info=PY312)
    assert slicer.calls == []


def test_still_missing_after_install_says_restart():
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k != "pyswarms"})
    slicer.pip = lambda args: slicer.calls.append(("pip", tuple(args)))  # pip did nothing
    with pytest.raises(DependencyError, match="still missing.*pyswarms.*restart Slicer"):
        ensure_dependencies(slicer.installers(), version_info=PY312)


def test_torch_requirement_combines_ours_with_nnunets():
    assert torch_requirement(lambda name: NNUNET_REQUIRES) == ">=2.3,>=2.1.2"
    assert torch_requirement(lambda name: None) == ">=2.3"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)
    assert torch_requirement(not_installed) == ">=2.3"  # importlib.metadata.requires's way
    assert any(r.startswith("torch") for r in REQUIREMENTS)


def test_the_panel_hears_when_installation_starts_after_the_answer():
    """Review W4: the status line says "Installing..." only once the user agreed."""
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k != "pyswarms"})
    installers = slicer.installers()
    installers.started = lambda: slicer.calls.append(("started",))
    assert ensure_dependencies(installers, version_info=PY312)
    assert len(slicer.questions) == 1 and slicer.calls[0] == ("started",)
    assert len(slicer.calls) > 1

    declined = Slicer({}, answer=False)
    installers = declined.installers()
    installers.started = lambda: declined.calls.append(("started",))
    assert not ensure_dependencies(installers, version_info=PY312)
    assert declined.calls == []


def test_openvino_comes_with_the_first_install_and_its_failure_is_a_note():
    missing = {k: v for k, v in EVERYTHING.items() if k not in ("pyswarms", "openvino")}
    slicer = Slicer(missing)
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    pips = [args[0][0] for kind, *args in slicer.calls if kind == "pip"]
    # Last: optional, after everything the pipeline cannot run without.
    assert pips[-1] == "openvino>=2024.0" and pips[0] == "pyswarms>=1.3"
    assert "OpenVINO" in slicer.questions[0]

    slicer, notes = Slicer(missing), []
    pip = slicer.pip

    def no_wheel(args):
        if args[0].startswith("openvino"):
            raise RuntimeError("no matching distribution for openvino")
        pip(args)
    slicer.pip = no_wheel
    installers = slicer.installers()
    installers.note = notes.append
    assert ensure_dependencies(installers, version_info=PY312)  # the module still runs
    assert "openvino" not in slicer.installed
    assert len(notes) == 1 and "runs use PyTorch" in notes[0] and "no matching" in notes[0]


def test_only_openvino_missing_asks_nothing():
    """An install from before OpenVINO was bundled keeps running on torch unasked."""
    slicer = Slicer({k: v for k, v in EVERYTHING.items() if k != "openvino"})
    assert ensure_dependencies(slicer.installers(), version_info=PY312)
    assert slicer.questions == [] and slicer.calls == []
