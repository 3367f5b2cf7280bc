"""Which Python packages the pipeline still needs in Slicer's Python, and installing them.

Checked on the first Apply, never at import time and never in testing mode (then the
caller gets a DependencyError). Done the way Slicer's segmentation extensions do it:

- Slicer 5.10 or newer (Python 3.12): nnunetv2 2.6+ needs Python 3.10, Slicer 5.6/5.8
  ship 3.9 (`check_slicer_python`);
- versions, not only presence (`importlib.metadata` + `packaging`, which Slicer 5.10
  ships: SuperBuild/External_python-pythonqt-requirements.cmake);
- torch (and torchvision, which timm imports) first, from the PyTorch extension, with our
  torch requirement and nnU-Net's (`PyTorchUtilsLogic.installTorch(torchVersionRequirement
  =...)`), as SlicerTotalSegmentator does (TotalSegmentator.py:875-889);
- then nnU-Net through the SlicerNNUNet extension's installer when it is there;
  otherwise every package with `--no-deps`, recursing into its requirements and skipping
  what Slicer or the PyTorch extension provide, as SlicerNNUNetLib/InstallLogic.py
  `pipInstallSelective` does: a plain `pip install` of nnU-Net's requirements would pull
  torch from PyPI through dynamic-network-architectures and timm, before the PyTorch
  extension could choose the build for this computer's GPU (review W1).

Everything Slicer-specific is passed in (`Installers`), so this runs under pytest.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass, field

# pyproject.toml [project] dependencies (Testing/module/test_deps_list.py keeps them equal).
REQUIREMENTS = (
    "torch>=2.3",
    "nnunetv2>=2.5",
    "pyswarms>=1.3",
    "numpy>=1.26",
    "scipy>=1.11",
    "SimpleITK>=2.3",
    "nibabel>=5.0",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "filelock>=4.3",
)
# pyproject.toml's `cpu` extra (test_deps_list keeps them equal): `predict --backend
# auto` runs the networks on OpenVINO when it is there, about 1.4x faster per case on a
# CPU (benchmarks/README.md), and on torch when it is not; so they come with the first
# install, and one that fails leaves a note, not a broken module.
FASTER_CPU = (
    "openvino>=2024.0",
    "onnx>=1.16",
)
# Slicer builds these itself (torch and torchvision: the PyTorch extension installs them):
# pip-installing them would shadow Slicer's own build or pick the wrong GPU build.
SHIPPED_BY_SLICER = ("simpleitk", "torch", "torchvision", "requests", "numpy")
# Python of the oldest supported Slicer (5.10 ships 3.12.10; nnunetv2 2.6+ needs 3.10).
MINIMUM_PYTHON = (3, 10)
MINIMUM_SLICER = "5.10"


class DependencyError(RuntimeError):
    """Packages are missing and may not (or could not) be installed."""


class UnsupportedSlicerError(DependencyError):
    """This Slicer's Python is too old for the pipeline."""


def check_slicer_python(version_info=sys.version_info, slicer_version: str = "") -> None:
    """Raise UnsupportedSlicerError, saying which Slicer is needed, on Python < 3.10."""
    if tuple(version_info[:2]) >= MINIMUM_PYTHON:
        return
    this = f"this Slicer {slicer_version} runs" if slicer_version else "this Slicer runs"
    raise UnsupportedSlicerError(
        f"UncertaintySeg needs 3D Slicer {MINIMUM_SLICER} or newer (Python 3.12): "
        f"{this} Python {version_info[0]}.{version_info[1]}, on which nnU-Net 2.6+ cannot "
        f"be installed. Install Slicer {MINIMUM_SLICER} or newer from "
        "https://download.slicer.org, then add this module to it.")


def _requirement(text: str):
    from packaging.requirements import Requirement

    return Requirement(text)


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class Unmet:
    """A requirement and the version installed now (None: not installed)."""

    requirement: str
    installed: str | None

    @property
    def name(self) -> str:
        return _requirement(self.requirement).name

    def describe(self) -> str:
        now = f"{self.installed} installed" if self.installed else "not installed"
        return f"{self.requirement} ({now})"


@dataclass
class DependencyPlan:
    """The requirements not met now."""

    unmet: list[Unmet] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.unmet

    def names(self) -> set[str]:
        return {u.name.lower() for u in self.unmet}

    def describe(self) -> str:
        lines = [u.describe() for u in self.unmet]
        return ("UncertaintySeg needs Python packages that are missing or too old in Slicer:\n- "
                + "\n- ".join(lines) + "\n\nPyTorch comes first, from the PyTorch extension "
                "(the build that fits this computer), then nnU-Net from the NNUNet extension "
                "when it is installed, the rest from pip (never PyTorch), and OpenVINO for "
                "faster runs on the CPU when it installs here. This downloads a "
                "few hundred MB and can take several minutes. Install now?")


def plan_dependencies(version=installed_version, requirements=REQUIREMENTS) -> DependencyPlan:
    """The requirements whose installed version (`version(name)`) is missing or too old."""
    unmet = []
    for text in requirements:
        requirement = _requirement(text)
        have = version(requirement.name)
        if have is None or not requirement.specifier.contains(have, prereleases=True):
            unmet.append(Unmet(text, have))
    return DependencyPlan(unmet)


@dataclass
class Installers:
    """What Slicer offers for installing (the module file fills it in).

    `torch_logic()`: PyTorchUtils.PyTorchUtilsLogic() or None without the PyTorch
    extension; `nnunet_installer()`: SlicerNNUNetLib.InstallLogic(...) or None;
    `pip_install(args: list[str])`; `requires(name)`: importlib.metadata.requires;
    `started()`: called once the user agreed, before the first install (the panel shows
    its "Installing Python packages..." status then, review W4); `note(text)`: what the
    user should know that is not an error (Slicer's Python console).
    """

    confirm: object
    pip_install: object
    torch_logic: object = lambda: None
    nnunet_installer: object = lambda: None
    requires: object = importlib.metadata.requires
    version: object = installed_version
    started: object = lambda: None
    note: object = print


def _requires(requires, name: str) -> list[str]:
    """A package's requirement lines (importlib.metadata.requires); [] when absent."""
    try:
        return list(requires(name) or [])
    except importlib.metadata.PackageNotFoundError:
        return []


def torch_requirement(requires) -> str:
    """Our torch floor combined with the one nnU-Net states, e.g. ">=2.3,>=2.1.2"."""
    specifiers = [str(_requirement(r).specifier) for r in REQUIREMENTS if r.startswith("torch")]
    for line in _requires(requires, "nnunetv2"):
        requirement = _requirement(line)
        if requirement.name.lower() == "torch" and requirement.marker is None:
            specifiers.append(str(requirement.specifier))
    return ",".join(s for s in specifiers if s)


def _install_nnunet(installers: Installers, requirement: str) -> None:
    installer = installers.nnunet_installer()
    if installer is not None:
        if not installer.setupPythonRequirements(requirement):
            raise DependencyError("the NNUNet extension could not install " + requirement
                                  + ": see its log (View > Python console)")
        return
    install_without_dependencies(installers, requirement)


def _needed(dependency, version, seen: set) -> bool:
    """A requirement line that must be installed: not Slicer's own, not seen, for this
    platform and no extra, and not met by what is installed now."""
    name = dependency.name.lower()
    if name in SHIPPED_BY_SLICER or name in seen:
        return False
    # An "extra == ..." marker cannot be evaluated without an extra: none is asked for.
    if dependency.marker is not None and not dependency.marker.evaluate({"extra": ""}):
        return False
    have = version(dependency.name)
    return have is None or not dependency.specifier.contains(have, prereleases=True)


def install_without_dependencies(installers: Installers, requirement: str,
                                 seen: set | None = None) -> None:
    """`pip install <requirement> --no-deps`, then each of its requirements the same way
    (read from the installed metadata), depth first; nothing in SHIPPED_BY_SLICER is
    ever installed, so pip cannot bring torch from PyPI (review W1)."""
    seen = set() if seen is None else seen
    name = _requirement(requirement).name
    seen.add(name.lower())
    installers.pip_install([requirement, "--no-deps"])
    importlib.invalidate_caches()  # the new package's metadata is read next
    for line in _requires(installers.requires, name):
        dependency = _requirement(line)
        if _needed(dependency, installers.version, seen):
            install_without_dependencies(
                installers, f"{dependency.name}{dependency.specifier}", seen)


def _install(installers: Installers, plan: DependencyPlan, torch_logic) -> None:
    """torch first, then nnU-Net, then the rest, each without letting pip pull torch."""
    names = plan.names()
    needs_torchvision = "nnunetv2" in names and installers.version("torchvision") is None
    if "torch" in names or needs_torchvision:
        _install_torch(installers, torch_logic)
    if "nnunetv2" in names:
        _install_nnunet(installers, next(u.requirement for u in plan.unmet if u.name == "nnunetv2"))
    for unmet in plan_dependencies(installers.version).unmet:
        if unmet.name.lower() not in SHIPPED_BY_SLICER:
            install_without_dependencies(installers, unmet.requirement)
    _install_faster_cpu(installers)


def _install_faster_cpu(installers: Installers) -> None:
    """OpenVINO (FASTER_CPU) when missing; a failure is a note: runs then use torch."""
    for unmet in plan_dependencies(installers.version, FASTER_CPU).unmet:
        try:
            install_without_dependencies(installers, unmet.requirement)
        except Exception as error:  # pip's failures reach here as any exception type
            installers.note(f"UncertaintySeg: {unmet.requirement} could not be installed "
                            f"({error}); runs use PyTorch on the CPU, about 1.4x slower")
            return


def _install_torch(installers: Installers, torch_logic) -> None:
    requirement = torch_requirement(installers.requires)
    if torch_logic.installTorch(askConfirmation=False, torchVersionRequirement=requirement) is None:
        raise DependencyError(f"PyTorch {requirement} could not be installed: use the PyTorch "
                              "Util module to install it, restart Slicer and Apply again")


def _refuse_old_shipped(plan: DependencyPlan) -> None:
    old = [u for u in plan.unmet if u.name.lower() in SHIPPED_BY_SLICER
           and u.name.lower() != "torch" and u.installed]
    if old:
        raise UnsupportedSlicerError(
            "This Slicer's own " + ", ".join(u.describe() for u in old) + " is too old and "
            f"cannot be replaced with pip: use 3D Slicer {MINIMUM_SLICER} or newer")


def ensure_dependencies(installers: Installers, testing: bool = False,
                        version_info=sys.version_info, slicer_version: str = "") -> bool:
    """Install what is missing or too old; True when everything is there afterwards,
    False when the user declines. Raises DependencyError with the fix otherwise."""
    check_slicer_python(version_info, slicer_version)
    plan = plan_dependencies(installers.version)
    if plan.empty:
        return True
    if testing:
        raise DependencyError("missing in testing mode (nothing is installed automatically): "
                              + ", ".join(u.describe() for u in plan.unmet))
    _refuse_old_shipped(plan)
    torch_logic = installers.torch_logic()
    if torch_logic is None and ("torch" in plan.names() or "nnunetv2" in plan.names()):
        raise DependencyError("UncertaintySeg requires the PyTorch extension: install it from "
                              "the Extensions Manager, restart Slicer and Apply again")
    if not installers.confirm(plan.describe()):
        return False
    installers.started()
    _install(installers, plan, torch_logic)
    importlib.invalidate_caches()  # new site-packages entries are otherwise not seen
    still = plan_dependencies(installers.version)
    if not still.empty:
        raise DependencyError("installation finished but these are still missing or too old: "
                              + ", ".join(u.describe() for u in still.unmet)
                              + "; restart Slicer and Apply again")
    return True


def _import_or_none(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def slicer_installers(started=lambda: None) -> Installers:
    """The installers inside the Slicer application (imports slicer: call only there).

    PyTorchUtils is the PyTorch extension (EXTENSION_DEPENDS); SlicerNNUNetLib the
    optional NNUNet extension, which installs nnU-Net the way its maintainers test.
    """
    import slicer

    def torch_logic():
        module = _import_or_none("PyTorchUtils")
        return module.PyTorchUtilsLogic() if module else None

    def nnunet_installer():
        module = _import_or_none("SlicerNNUNetLib")
        return module.InstallLogic(doAskConfirmation=False) if module else None

    return Installers(confirm=lambda text: slicer.util.confirmOkCancelDisplay(text, "UncertaintySeg"),
                      pip_install=slicer.util.pip_install, torch_logic=torch_logic,
                      nnunet_installer=nnunet_installer, started=started)


def pipeline_ready(version=installed_version) -> bool:
    """Every requirement met (the self-test runs the real pipeline only then, #13)."""
    return plan_dependencies(version).empty


def add_faster_cpu() -> None:
    """OpenVINO into an installation made before it came with the first install; from
    Slicer's Python console: `from UncertaintySegLib.deps import add_faster_cpu;
    add_faster_cpu()` (pip's `--no-deps` way, as the first install)."""
    _install_faster_cpu(slicer_installers())
