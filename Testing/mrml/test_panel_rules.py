"""Panel rules that need no Qt: one dependency installation at a time (review W4), the
four volumes of one case (m4), which worklist folder to open (W3)."""

from __future__ import annotations

import pytest

from UncertaintySegLib.install_guard import InstallGuard
from UncertaintySegLib.runner import different_cases


def test_a_second_apply_during_installation_is_ignored_and_the_panel_comes_back():
    states, calls = [], []
    guard = InstallGuard(states.append)

    def install():
        calls.append("pip")
        assert guard.run(install) is None  # Apply clicked again while pip runs
        return True

    assert guard.run(install) is True
    assert calls == ["pip"] and states == [True, False] and not guard.busy

    def failing():
        raise RuntimeError("pip failed")
    with pytest.raises(RuntimeError, match="pip failed"):
        guard.run(failing)
    assert states[-1] is False and not guard.busy  # the panel is usable again


@pytest.mark.parametrize("names, warns", [
    (("BraTS19_A_flair", "BraTS19_A_t1", "BraTS19_A_t1ce", "BraTS19_A_t2"), False),
    (("BraTS19_B_flair", "BraTS19_A_t1", "BraTS19_A_t1ce", "BraTS19_A_t2"), True),
    (("BraTS-GLI-00001-000-t2f", "BraTS-GLI-00001-000-t1n", "BraTS-GLI-00002-000-t1c",
      "BraTS-GLI-00001-000-t2w"), True),
    (("FLAIR", "BraTS19_A_t1", "T1ce", "T2"), False),  # a name without a case id
])
def test_volumes_named_after_different_cases_are_warned_about(names, warns):
    message = different_cases(dict(zip(("flair", "t1", "t1ce", "t2"), names)))
    assert bool(message) is warns
    if warns:
        assert "different cases" in message and "BraTS" in message
