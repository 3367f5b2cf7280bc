"""Deprecated re-export of `uncertaintyseg_shared.options`; removed in the next release."""
from uncertaintyseg_shared.options import *  # noqa: F401,F403
