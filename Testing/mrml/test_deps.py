"""Dependency installation decisions (no package is installed by these tests)."""

from __future__ import annotations

import importlib.util

import pytest

from UncertaintySegLib.deps import DependencyError, ensure_dependencies, plan_dependencies


class Environment:
    """An interpreter's installed packages, as importlib's find_spec sees them; the
    installers add to it as pip and the PyTorch extension would."""

    def __init__(self, installed):
        self.installed = set(installed)
        self.calls = []

    def find_spec(self, name):
        return object() if name in self.installed else None

    def install_torch(self):
        self.calls.append("torch")
        self.installed.add("torch")
        return True

    def pip_install(self, requirements):
        self.calls.append(("pip", tuple(requirements)))
        self.installed.update(r.split(">")[0].split("=")[0] for r in requirements)


def test_plan_uses_the_real_interpreter_without_importing():
    plan = plan_dependencies()
    assert "scipy>=1.11" not in plan.pip  # installed here
    assert plan.torch == (importlib.util.find_spec("torch") is None)


def test_nothing_missing_means_no_question():
    env = Environment({"torch", "nnunetv2", "pyswarms", "SimpleITK", "nibabel", "scipy",
                       "tqdm", "matplotlib"})
    asked = []
    assert ensure_dependencies(asked.append, env.install_torch, env.pip_install,
                               find_spec=env.find_spec)
    assert asked == [] and env.calls == []


def test_torch_first_then_pip_after_confirmation():
    env = Environment({"SimpleITK", "scipy", "tqdm", "matplotlib", "nibabel"})
    questions = []
    assert ensure_dependencies(lambda text: questions.append(text) or True, env.install_torch,
                               env.pip_install, find_spec=env.find_spec)
    assert "PyTorch extension" in questions[0] and "nnunetv2>=2.5" in questions[0]
    assert env.calls == ["torch", ("pip", ("nnunetv2>=2.5", "pyswarms>=1.3"))]


def test_declining_or_testing_mode_installs_nothing():
    env = Environment(set())
    assert not ensure_dependencies(lambda text: False, env.install_torch, env.pip_install,
                                   find_spec=env.find_spec)
    with pytest.raises(DependencyError, match="testing mode"):
        ensure_dependencies(lambda text: True, env.install_torch, env.pip_install,
                            testing=True, find_spec=env.find_spec)
    assert env.calls == []
