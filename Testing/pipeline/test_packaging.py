"""Packaging: pyproject.toml lists every package, and a wheel carries the bundled models.

The models live in the Slicer module's Resources/Models; outside a checkout (a plain
`pip install .` or a wheel) they must come with the package, or `predict`'s default
model is missing.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from uncertaintyseg.networks.models import MODEL_FILE, MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "UncertaintySeg"
BUNDLED = sorted(p.name for p in MODELS_DIR.glob("*") if (p / MODEL_FILE).is_file())


def _setuptools() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_is_listed():
    on_disk = {str(init.parent.relative_to(SOURCE)).replace(os.sep, ".")
               for top in ("uncertaintyseg", "uncertaintyseg_shared", "UncertaintySegLib")
               for init in (SOURCE / top).rglob("__init__.py")}
    listed = set(_setuptools()["packages"])
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to pyproject's packages"
    assert listed - on_disk == {"uncertaintyseg.bundled_models"}


def _copy_project(target: Path) -> Path:
    skip = shutil.ignore_patterns(".git", ".venv", "venv", "build", "*.egg-info",
                                  "__pycache__", ".pytest_cache", "uncertaintyseg-demo")
    shutil.copytree(ROOT, target, ignore=skip)
    return target


@pytest.mark.slow
def test_wheel_carries_the_bundled_models(tmp_path):
    assert BUNDLED, "no bundled models found in the checkout"
    project = _copy_project(tmp_path / "project")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(project)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("uncertaintyseg-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "uncertaintyseg_shared/options.py" in names  # the package the Slicer side shares
    for model in BUNDLED:
        for part in (MODEL_FILE, "MODEL_CARD.md", "2d/checkpoint.pth", "2d/plans.json",
                     "3d/checkpoint.pth", "3d/dataset.json"):
            assert f"uncertaintyseg/bundled_models/{model}/{part}" in names
    # brats-mini's feature-distance fit sits beside its model.json (feature_distance.py).
    assert "uncertaintyseg/bundled_models/brats-mini/feature_distance.npz" in names
    # Installed (unpacked) away from the checkout, the package finds its own copy.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import uncertaintyseg.networks.models as m; "
             "print(m.MODELS_DIR); print(','.join(m.available_models()))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    models_dir, available = out.stdout.split()
    assert Path(models_dir) == site / "uncertaintyseg" / "bundled_models"
    assert available.split(",") == ["analytic", *BUNDLED]
