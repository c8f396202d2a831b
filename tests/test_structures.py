"""Structure checks and hashing shared by every stage."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alloop.errors import UnphysicalStructureError
from alloop.structures import atoms_from_json, atoms_to_json, config_hash, fresh_candidates, validate_atoms


def test_a_sound_crystal_and_dimer_pass():
    validate_atoms(bulk("W", "bcc", a=3.17, cubic=True).repeat(3))
    validate_atoms(Atoms("W2", positions=[[0, 0, 0], [2.3, 0, 0]]))


@pytest.mark.parametrize(
    "atoms, match",
    [
        (Atoms("W2", positions=[[0, 0, 0], [0.3, 0, 0]]), "0.300 Å apart"),
        (Atoms("W", cell=[0.4, 3, 3], pbc=True), "apart"),  # too close to its own periodic image
        (Atoms("W2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN"),
        (Atoms("W", cell=[3, 3, 3], pbc=[True, True, False]), "mixed periodicity"),
        (Atoms(), "no atoms"),
    ],
)
def test_unphysical_structures_are_refused_with_the_reason(atoms, match):
    with pytest.raises(UnphysicalStructureError, match=match):
        validate_atoms(atoms)


def test_json_round_trip_keeps_the_hash():
    a = bulk("W", "bcc", a=3.17, cubic=True).repeat(2)
    a.rattle(0.05, seed=3)
    b = atoms_from_json(atoms_to_json(a))
    assert config_hash(b) == config_hash(a)
    b.positions[0, 0] += 1e-3
    assert config_hash(b) != config_hash(a)


def test_fresh_candidates_are_each_new_structure_once_and_name_every_hash_they_took():
    crystal = bulk("W", "bcc", a=3.17, cubic=True)
    held = crystal.copy()
    held.rattle(0.01, seed=1)  # a configuration the campaign already has
    overlap = Atoms("W2", positions=[[0, 0, 0], [0.3, 0, 0]])
    new = fresh_candidates([crystal, crystal.copy(), held, overlap], {config_hash(held)}, min_distance=1.0)
    assert [h for h, _ in new.physical] == [config_hash(crystal)]
    assert [(h, "apart" in why) for h, _, why in new.rejected] == [(config_hash(overlap), True)]
    # what a relaxed motif of this iteration may not become: the physical and the rejected ones alike
    assert new.hashes == {config_hash(crystal), config_hash(overlap)}
