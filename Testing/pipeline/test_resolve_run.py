"""devices.resolve_run: every `auto` of a run made concrete once, and recorded."""

import pytest
import torch

from uncertaintyseg.networks.devices import Resolved, resolve_run
from uncertaintyseg.errors import InputError
from uncertaintyseg.files.io import load_case
from uncertaintyseg.networks.models import analytic_model
from uncertaintyseg.files.phantom import write_phantom_case
from uncertaintyseg.run.pipeline import Settings, run_case

CPU = torch.device("cpu")


def test_auto_values_resolve_to_the_cpu_ones():
    # No GPU here: auto is the CPU's preview preset (DECISIONS #6), 16 views per call.
    resolved = resolve_run(Settings(device="cpu", precision="fp32", threads=2))
    assert resolved == Resolved(device=CPU, autocast=None, projections="preview",
                                projections_per_slice=16, threads=2, batch_size_2d=16)
    assert resolved.precision == "fp32"


def test_asked_values_are_parsed_not_replaced():
    resolved = resolve_run(Settings(device="cpu", precision="bf16", projections="24",
                                    batch_size_2d="5", threads="3"))
    assert (resolved.autocast, resolved.precision) == (torch.bfloat16, "bf16")
    assert resolved.projections == resolved.projections_per_slice == 24
    assert (resolved.batch_size_2d, resolved.threads) == (5, 3)
    assert resolve_run(Settings(device="cpu", projections="paper")).projections_per_slice is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without CUDA")
def test_a_missing_device_is_refused_with_the_fix():
    with pytest.raises(InputError, match="--device cuda.*--device cpu"):
        resolve_run(Settings(device="cuda"))


def test_report_records_the_values_resolved_once(tmp_path, monkeypatch):
    # run_case uses and records the Resolved it is given: the report cannot have
    # re-resolved any of them (these are not what resolve_run would return here).
    import uncertaintyseg.run.pipeline as pipeline

    def refuse(settings):
        raise AssertionError("resolved twice")

    monkeypatch.setattr(pipeline, "resolve_run", refuse)
    resolved = Resolved(device=CPU, autocast=torch.bfloat16, projections=3,
                        projections_per_slice=3, threads=1, batch_size_2d=5)
    case = load_case(case_dir=write_phantom_case(tmp_path, shape=(10, 32, 32)))
    settings = Settings(kernel_mm=(8.0, 8.0, 16.0), max_boxes=1)
    report = run_case(case, analytic_model(), settings, resolved=resolved).report
    assert report["device"]["name"] == "cpu" and report["device"]["precision"] == "bf16"
    recorded = report["settings"]
    assert recorded["projections"] == recorded["projections_per_slice_asked"] == 3
    assert recorded["threads"] == 1 and recorded["batch_size_2d"] == 5
    assert (recorded["device"], recorded["precision"]) == ("auto", "auto")  # as asked
    assert report["projections_per_slice"]["max"] == 3  # and the run used them
