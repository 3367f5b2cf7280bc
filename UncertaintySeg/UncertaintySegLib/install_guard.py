"""One dependency installation at a time, with the panel switched off meanwhile.

pip runs for minutes inside `slicer.util.pip_install`, whose `logProcessOutput` calls
`processEvents()` for every output line (v5.10.0 util.py:3922-3949): a second click on
Apply would re-enter the installer and start a second pip on the same site-packages
(review W4). Pure Python, so the rule is tested without Qt.
"""

from __future__ import annotations

class InstallGuard:
    """`run(action)` calls `action()` unless an installation is already running.

    `set_busy(busy: bool)` switches the panel (buttons, selectors, status line) off and on
    around the action; it is called with False however the action ends.
    """

    def __init__(self, set_busy):
        self.set_busy = set_busy
        self.busy = False

    def run(self, action):
        """The action's result, or None when another installation is running."""
        if self.busy:
            return None
        self.busy = True
        self.set_busy(True)
        try:
            return action()
        finally:
            self.busy = False
            self.set_busy(False)
