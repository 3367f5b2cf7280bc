"""Deprecated re-export of `uncertaintyseg_shared.errors`; removed in the next release."""
from uncertaintyseg_shared.errors import *  # noqa: F401,F403
