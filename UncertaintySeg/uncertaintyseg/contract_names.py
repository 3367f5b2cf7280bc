"""Deprecated re-export of `uncertaintyseg_shared.contract_names`; removed in the next release."""
from uncertaintyseg_shared.contract_names import *  # noqa: F401,F403
