"""Which Python packages the pipeline still needs in Slicer's Python, and installing them.

Checked on the first Apply, never at import time: torch comes from the PyTorch
extension (it picks the build that fits the GPU), the rest from pip after the user
confirms. In testing mode nothing is installed: the caller gets a DependencyError.
The installers and the confirmation are passed in (the module file gives Slicer's).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

# import name -> pip requirement (minimums of pyproject.toml)
PIP_PACKAGES = {
    "nnunetv2": "nnunetv2>=2.5",
    "pyswarms": "pyswarms>=1.3",
    "SimpleITK": "SimpleITK>=2.3",
    "nibabel": "nibabel>=5.0",
    "scipy": "scipy>=1.11",
    "tqdm": "tqdm>=4.60",
    "matplotlib": "matplotlib>=3.7",
}


class DependencyError(RuntimeError):
    """Packages are missing and may not (or could not) be installed."""


@dataclass
class DependencyPlan:
    """What is missing: torch (PyTorch extension) and pip requirements."""

    torch: bool = False
    pip: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.torch and not self.pip

    def describe(self) -> str:
        parts = []
        if self.torch:
            parts.append("PyTorch (through the PyTorch extension, the build that fits this "
                         "computer's GPU or CPU)")
        if self.pip:
            parts.append("with pip: " + ", ".join(self.pip))
        return ("UncertaintySeg needs Python packages that are not installed in Slicer yet:\n- "
                + "\n- ".join(parts) + "\n\nThis downloads a few hundred MB and can take "
                "several minutes. Install now?")


def plan_dependencies(find_spec=importlib.util.find_spec) -> DependencyPlan:
    """Look up (without importing) which packages are missing."""
    return DependencyPlan(torch=find_spec("torch") is None,
                          pip=[req for name, req in PIP_PACKAGES.items() if find_spec(name) is None])


def ensure_dependencies(confirm, install_torch, pip_install, testing: bool = False,
                        find_spec=importlib.util.find_spec) -> bool:
    """Install what is missing; True when everything is there afterwards.

    `confirm(text) -> bool` asks the user; `install_torch() -> bool` installs torch
    (PyTorch extension); `pip_install(requirements: list[str])` runs pip. Returns False
    when the user declines. Torch goes first so that pip does not pull a CPU-only torch
    in as a dependency of nnunetv2.
    """
    plan = plan_dependencies(find_spec)
    if plan.empty:
        return True
    if testing:
        raise DependencyError("missing in testing mode (nothing is installed automatically): "
                              + plan.describe().split("\n\n")[0])
    if not confirm(plan.describe()):
        return False
    if plan.torch and not install_torch():
        raise DependencyError("PyTorch could not be installed: install the PyTorch extension "
                              "from the Extensions Manager, restart Slicer and Apply again")
    if plan.pip:
        pip_install(plan.pip)
    importlib.invalidate_caches()  # new site-packages entries are otherwise not seen
    still = plan_dependencies(find_spec)
    if not still.empty:
        raise DependencyError("installation finished but these are still missing: "
                              + ", ".join((["torch"] if still.torch else []) + still.pip)
                              + "; restart Slicer and Apply again")
    return True
