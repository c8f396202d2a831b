"""MACE, Orb and fairchem members on the real libraries, each in its own environment.

For each family a small model with random weights is built by the library's own constructors inside
that family's environment (tests/fixtures/random_checkpoints.py), saved in the format of the
library's released checkpoints, and then loaded twice: by alloop, through a member spec with
`checkpoint:` and `python:` (the worker in that environment), and by the library's own ASE
calculator. Energies and forces must agree on W and MoNbTaW cells.

The environments come from `alloop env create FAMILY` (.ci/install makes them); a missing one fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alloop.ensemble import MemberSpec, load_member
from alloop.ensemble import environments as envs
from tests.fixtures.random_checkpoints import build_in, reference_in

pytestmark = pytest.mark.slow

KINDS = {"mace": "mace", "orb": "orb", "fairchem": "fairchem"}


def cells() -> list[Atoms]:
    """Rattled bcc W (16 and 54 atoms) and two random MoNbTaW 16-atom cells, one strained."""
    rng = np.random.default_rng(12)
    w16 = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
    w54 = bulk("W", "bcc", a=3.17, cubic=True).repeat(3)
    hea = bulk("W", "bcc", a=3.22, cubic=True).repeat(2)
    hea.numbers = rng.choice([41, 42, 73, 74], len(hea))
    strained = hea.copy()
    strained.set_cell(strained.cell * [1.04, 0.98, 1.0], scale_atoms=True)
    out = [w16, w54, hea, strained]
    for i, a in enumerate(out):
        a.rattle(0.08, seed=i)
    return out


def family_python(family: str) -> Path:
    status = envs.probe(envs.env_dir() / family, family)
    if not status.loads:
        pytest.fail(
            f"the {family} environment is missing or broken ({status.error}); create it with "
            f"`alloop env create {family}` (.ci/install does)"
        )
    return status.python


class Case:
    """A family's random checkpoint, loaded by alloop in that family's environment, and the library
    calculator's outputs on the same cells."""

    def __init__(self, family: str, folder: Path) -> None:
        python = family_python(family)
        built = build_in(python, family, folder)
        self.family, self.structures = family, cells()
        self.reference = reference_in(python, family, built["checkpoint"], self.structures, folder)
        spec = MemberSpec(name=f"{family}-random", kind=KINDS[family], checkpoint=built["checkpoint"],
                          model=built["model"], task=built.get("task"), python=str(python), device="cpu")
        self.member = load_member(spec)
        self.predictions = self.member.predict(self.structures)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    made: dict[str, Case] = {}

    def get(family: str) -> Case:
        if family not in made:
            made[family] = Case(family, tmp_path_factory.mktemp(family))
        return made[family]

    yield get
    for c in made.values():
        c.member.close()


@pytest.mark.parametrize("family", list(KINDS))
def test_alloop_member_matches_the_library_calculator(case, family):
    c = case(family)
    ref = c.reference
    assert c.predictions.errors == {}
    # Orb runs in float32: its energies of ~ -500 eV agree to the last bits (1e-7 relative).
    np.testing.assert_allclose(c.predictions.energies, ref["energies"], rtol=1e-6, atol=1e-6)
    assert np.abs(np.concatenate(c.predictions.forces) - ref["forces"]).max() < 1e-5
    # A random model still gives non-trivial forces, so the comparison means something.
    assert np.abs(ref["forces"]).max() > 1e-2


def test_orb_confidence_head_comes_through_as_the_expected_force_error(case):
    c = case("orb")
    edges = c.reference["bin_edges"]
    centres = 0.5 * (edges[1:] + edges[:-1])
    per_atom = np.split(c.reference["confidence"] @ centres, np.cumsum([len(a) for a in c.structures])[:-1])
    np.testing.assert_allclose(c.predictions.extras["orb_confidence"], [e.max() for e in per_atom], rtol=1e-6)

