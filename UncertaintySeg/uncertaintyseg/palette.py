"""Deprecated re-export of `uncertaintyseg_shared.palette`; removed in the next release."""
from uncertaintyseg_shared.palette import *  # noqa: F401,F403
