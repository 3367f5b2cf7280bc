"""The project's user-facing exception, importable without SimpleITK, nibabel or torch.

Kept in its own module so that `options`, the Slicer Lib and `Settings` validation can
raise it before any heavy package is installed or imported (`uncertaintyseg.files.io` re-exports it).
"""


# The end of the input checks' refusal (input_checks); the Slicer Lib swaps it for its
# own checkbox's name, so it lives here, importable without numpy.
FORCE_HINT = "Pass --force to run anyway."


class InputError(ValueError):
    """Bad input; the message names the file (or the flag) and says what to do."""


class InputWarning(UserWarning):
    """Input that runs but is probably not what the user meant (a constant modality)."""


class OutputError(InputError):
    """The output cannot be written where asked (read-only, no permission, disk full);
    the message names the path and says what to do. An InputError: --out is an input."""
