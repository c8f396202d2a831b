"""alloop.io: labelled data in the formats the paper's and the shared data sets use."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk

from alloop.errors import ConfigError, MissingFileError
from alloop.io import read_labelled, structure_from_pymatgen_dict, write_extxyz


def test_w_npz_gives_total_energies_and_dft_forces(w_npz, shared_data):
    frames = read_labelled(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    assert len(frames) == 1129 and sum(map(len, frames)) == 99_402
    i = 1026  # first dimer
    s = slice(w_npz["offsets"][i], w_npz["offsets"][i + 1])
    assert frames[i].get_potential_energy() == w_npz["energy_dft_total"][i]
    np.testing.assert_array_equal(frames[i].get_forces(), w_npz["forces_dft"][s])


def test_mlearn_json_is_read_without_pymatgen(shared_data):
    frames = read_labelled(shared_data / "mlearn_Mo" / "test.json")
    entries = json.loads((shared_data / "mlearn_Mo" / "test.json").read_text())
    assert len(frames) == 23
    a, e = frames[0], entries[0]
    assert a.get_chemical_formula() == f"Mo{e['num_atoms']}"
    assert a.get_potential_energy() == e["outputs"]["energy"]
    np.testing.assert_array_equal(a.get_forces(), e["outputs"]["forces"])
    np.testing.assert_allclose(a.cell.array, e["structure"]["lattice"]["matrix"])
    assert a.info["group"] == e["group"]


def test_pymatgen_dict_agrees_with_pymatgen():
    import pymatgen.core as pymatgen
    s = pymatgen.Structure.from_spacegroup("Im-3m", pymatgen.Lattice.cubic(3.17), ["W"], [[0, 0, 0]])
    s.perturb(0.1, min_distance=0.01)
    a = structure_from_pymatgen_dict(s.as_dict())
    np.testing.assert_allclose(a.positions, s.cart_coords)
    np.testing.assert_allclose(a.cell.array, s.lattice.matrix)
    with pytest.raises(ValueError, match="partially occupied"):
        structure_from_pymatgen_dict({**s.as_dict(), "sites": [{"species": [{"element": "W", "occu": 0.5}], "xyz": [0, 0, 0]}]})


def test_pacemaker_frames_round_trip(tmp_path):
    atoms = [bulk("W", "bcc", a=3.17, cubic=True) for _ in range(2)]
    forces = [np.full((2, 3), 0.1), np.full((2, 3), -0.2)]
    df = pd.DataFrame({"ase_atoms": atoms, "energy": [-25.0, -24.0], "forces": forces, "energy_corrected": [-1.0, 0.0]})
    path = tmp_path / "train.pckl.gzip"
    df.to_pickle(path, compression="gzip")
    frames = read_labelled(path)
    assert [a.get_potential_energy() for a in frames] == [-25.0, -24.0]
    np.testing.assert_array_equal(frames[1].get_forces(), forces[1])


def test_extxyz_round_trip_and_unlabelled_input(tmp_path):
    a = bulk("W", "bcc", a=3.17, cubic=True)
    a.rattle(0.01, seed=0)
    labelled = a.copy()
    from ase.calculators.singlepoint import SinglePointCalculator

    labelled.calc = SinglePointCalculator(labelled, energy=-25.5, forces=np.ones((2, 3)))
    path = write_extxyz(tmp_path / "sub" / "set.extxyz", [labelled])
    back = read_labelled(path)
    assert back[0].get_potential_energy() == -25.5
    bare = write_extxyz(tmp_path / "bare.extxyz", [a])
    assert len(read_labelled(bare, require_forces=False)) == 1
    with pytest.raises(ConfigError, match="1 structure.s. have no reference forces: 0"):
        read_labelled(bare)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(MissingFileError, match="structure file not found"):
        read_labelled(tmp_path / "nope.extxyz")
    junk = tmp_path / "junk.xyz"
    junk.write_text("this is not xyz\n")
    with pytest.raises(ConfigError, match="ASE cannot read it"):
        read_labelled(junk)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"structure": {"lattice": {}}, "outputs": {}}]))
    with pytest.raises(ConfigError, match="entry 0: not a pymatgen Structure dict"):
        read_labelled(wrong)
    short = tmp_path / "short.json"
    site = {"species": [{"element": "W", "occu": 1}], "xyz": [0, 0, 0]}
    short.write_text(json.dumps([{"structure": {"lattice": {"matrix": np.eye(3).tolist()}, "sites": [site]},
                                  "outputs": {"energy": 1.0, "forces": [[0, 0, 0], [0, 0, 0]]}}]))
    with pytest.raises(ConfigError, match=r"(?s)short.json.*structure 0: forces shaped \(2, 3\) for 1 atoms"):
        read_labelled(short)
