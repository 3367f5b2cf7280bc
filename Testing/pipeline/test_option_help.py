"""Help texts offer only values the parser takes: `--label-convention` names its choices
and the ET label each writes (its help once offered "4" and "3", which it refused)."""

import re

import pytest

from uncertaintyseg.commands import cli
from uncertaintyseg.files.label_maps import ET_LABEL
from uncertaintyseg.options import OPTIONS


def test_label_convention_help_names_each_choice_and_its_et_label():
    option = OPTIONS["label_convention"]
    offered = dict(re.findall(r"(\w+) \(ET = (\d)\)", option.help))
    assert set(offered) == set(option.choices)
    assert {name: int(label) for name, label in offered.items()} == {
        name: ET_LABEL[name] for name in option.choices}


def test_label_convention_takes_what_the_help_offers(capsys):
    parser = cli.build_parser()
    base = ["predict", "--case", "c", "--out", "o", "--label-convention"]
    for name in OPTIONS["label_convention"].choices:
        assert parser.parse_args([*base, name]).label_convention == name
    with pytest.raises(SystemExit) as refused:
        parser.parse_args([*base, "3"])
    assert refused.value.code == 2
    assert "brats2023" in capsys.readouterr().err  # the refusal lists the values to give

