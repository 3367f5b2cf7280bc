"""The project's user-facing exception, importable without SimpleITK, nibabel or torch.

Kept in its own module so that `options`, the Slicer Lib and `Settings` validation can
raise it before any heavy package is installed or imported (`io` re-exports it).
"""


class InputError(ValueError):
    """Bad input; the message names the file (or the flag) and says what to do."""
