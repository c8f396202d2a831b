"""Replaying DFT labels from published data sets, looked up by configuration hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from alloop.errors import LabelError
from alloop.label import ReplayBackend, ReplaySettings, compute_label
from alloop.label.replay import labelled_configurations
from alloop.structures import config_hash


def w_config(npz, i: int) -> tuple[Atoms, float, np.ndarray]:
    s = slice(npz["offsets"][i], npz["offsets"][i + 1])
    atoms = Atoms(numbers=npz["numbers"][s], positions=npz["positions"][s], cell=npz["cells"][i], pbc=npz["pbc"][i])
    return atoms, float(npz["energy_dft_total"][i]), npz["forces_dft"][s]


def test_w_npz_labels_come_back_by_hash(shared_data: Path, w_npz, tmp_path: Path) -> None:
    backend = ReplayBackend(ReplaySettings(sources=[shared_data / "uq_umlip_W" / "W_uq_umlip.npz"]))
    for i in (0, 1030, 1100):  # a defect, a dimer, a short-range configuration
        atoms, energy, forces = w_config(w_npz, i)
        result = backend.compute(atoms, tmp_path / str(i))
        assert result.source == "replay" and result.energy == energy
        assert np.array_equal(result.forces, forces) and result.meta["replay_index"] == i
        assert (tmp_path / str(i) / "result.json").is_file()


def test_configuration_not_in_the_set_is_a_final_failure(shared_data: Path, w_npz, tmp_path: Path) -> None:
    atoms, _, _ = w_config(w_npz, 0)
    atoms.positions[0] += 0.01
    backend = ReplayBackend(ReplaySettings(sources=[shared_data / "uq_umlip_W" / "W_uq_umlip.npz"]))
    with pytest.raises(LabelError, match="not in the replay set") as info:
        backend.compute(atoms, tmp_path)
    assert not info.value.retryable


def test_mlearn_and_snap_json_survive_an_extxyz_round_trip(shared_data: Path, tmp_path: Path) -> None:
    sources = [shared_data / "mlearn_Mo" / "test.json", shared_data / "snap_NbMoTaW" / "TaW_Test.json"]
    labelled = [item[1:] for src in sources for item in labelled_configurations(src)]
    assert len(labelled) == 23 + 40
    # The loop's configurations may have been through a text format: the hash must still match.
    write(tmp_path / "configs.extxyz", [a for a, *_ in labelled])
    configs = read(tmp_path / "configs.extxyz", index=":")

    class DFT:  # the shape of the campaign's labels.dft section
        backend = "replay"
        replay = ReplaySettings(sources=sources)

    for k in (0, 1, 22, 23, 62):
        result = compute_label(DFT, configs[k], tmp_path / f"c{k}")
        assert result.energy == labelled[k][1] and np.array_equal(result.forces, labelled[k][2])
        # 8 decimals in extxyz can cross config_hash's 6-decimal rounding; then the geometry match finds it
        same_hash = config_hash(configs[k]) == config_hash(labelled[k][0])
        assert result.meta["replay_match"] == ("hash" if same_hash else "tolerance")
    assert set(labelled[62][0].get_chemical_symbols()) == {"Ta", "W"}


def test_pacemaker_pickle_and_extxyz_sources(w_npz, tmp_path: Path) -> None:
    configs = [w_config(w_npz, i) for i in range(5)]
    df = pd.DataFrame({"ase_atoms": [a for a, _, _ in configs], "energy": [e for _, e, _ in configs],
                       "forces": [f for _, _, f in configs]})
    df.to_pickle(tmp_path / "train.pckl.gzip", compression="gzip")
    images = []
    for atoms, energy, forces in configs[3:]:
        image = atoms.copy()
        image.calc = SinglePointCalculator(image, energy=energy + 1.0, forces=forces)
        images.append(image)
    write(tmp_path / "extra.extxyz", images)

    backend = ReplayBackend(ReplaySettings(sources=[tmp_path / "train.pckl.gzip", tmp_path / "extra.extxyz"]))
    assert backend.lookup(configs[4][0])[0].energy == configs[4][1]  # the first source wins
    extxyz_only = ReplayBackend(ReplaySettings(sources=[tmp_path / "extra.extxyz"]))
    assert extxyz_only.lookup(configs[4][0])[0].energy == configs[4][1] + 1.0
