"""`--precision auto`: fp16 on CUDA, bf16 on CPUs with native bf16, fp32 elsewhere."""

import pytest
import torch

from uncertaintyseg.networks.devices import cpu_has_native_bf16, resolve_precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
XEON_AMX = "processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"
OLD = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\nbugs\t\t: avx512_bf16\n"


def test_native_bf16_from_the_cpu_flags():
    assert cpu_has_native_bf16(EPYC) and cpu_has_native_bf16(XEON_AMX)
    # Only the flags line counts (a word elsewhere in cpuinfo is not a flag).
    assert not cpu_has_native_bf16(OLD) and not cpu_has_native_bf16("")


def test_auto_precision_per_device():
    assert resolve_precision("auto", CUDA) is torch.float16
    assert resolve_precision("auto", CPU, native_bf16=True) is torch.bfloat16
    assert resolve_precision("auto", CPU, native_bf16=False) is None
    assert resolve_precision("auto", CPU) is (torch.bfloat16 if cpu_has_native_bf16() else None)


def test_asked_precision_is_kept():
    for device in (CPU, CUDA):
        assert resolve_precision("fp32", device) is None
        assert resolve_precision("bf16", device, native_bf16=False) is torch.bfloat16
        assert resolve_precision("fp16", device) is torch.float16


def test_mps_is_a_device_choice_and_refused_clearly_without_an_apple_gpu(monkeypatch):
    from uncertaintyseg.errors import InputError
    from uncertaintyseg.options import OPTIONS
    from uncertaintyseg.networks.devices import resolve_device

    assert "mps" in OPTIONS["device"].choices
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(InputError, match="--device mps.*no Apple GPU.*--device cpu"):
        resolve_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")
    # MPS is asked for explicitly; auto stays CUDA-or-CPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == CPU
