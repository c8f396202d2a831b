"""Whole-ensemble predictions: the arrays alloop.uq consumes, and failures that stay visible."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from ase import Atoms

from alloop.ensemble import EnsembleSpec, predict_ensemble, predict_member, resolve_ensemble
from alloop.io import read_labelled
from alloop.uq import uncertainty

import sevenn  # noqa: F401  (a real part: missing means failing)
import chgnet  # noqa: F401  (a real part: missing means failing)

# A few small W configurations from the paper's data: bulk, a dimer, a compressed cell.
_W_PICK = (1, 3, 24, 1026, 90)


@pytest.fixture(scope="module")
def w_frames(shared_data):
    frames = read_labelled(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    return [frames[i] for i in _W_PICK]


def test_predict_ensemble_stacks_members_for_uq(w_frames):
    progress = []
    preds = predict_ensemble("offline-fast", w_frames, progress=progress.append)
    n_atoms = [len(a) for a in w_frames]
    assert preds.members == ("7net-0", "chgnet-0.3.0", "chgnet-0.2.0")
    assert preds.energies.shape == (3, 5) and preds.forces.shape == (3, sum(n_atoms), 3)
    np.testing.assert_array_equal(np.diff(preds.offsets), n_atoms)
    assert preds.forces.dtype == np.float64 and np.isfinite(preds.forces).all()
    assert len(progress) == 3 and progress[0].startswith("7net-0: 5 structures in")
    u = preds.uncertainty(1)
    np.testing.assert_allclose(u, uncertainty(preds.forces, preds.offsets))
    # The dimer at 1.5 Å (index 1026) is far out of distribution: its U dwarfs bulk's.
    assert u[3] > 100 * u[0]


def test_a_member_failure_makes_u_nan_only_there(w_frames):
    singular = Atoms("W2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True)
    structures = [w_frames[0], singular, w_frames[2]]
    preds = predict_ensemble("offline-fast", structures)
    np.testing.assert_array_equal(preds.failed(), [False, True, False])
    u = preds.uncertainty()
    assert np.isnan(u[1]) and np.isfinite(u[[0, 2]]).all()
    assert all("Singular matrix" in reason for reason in preds.structure_errors(1))
    assert np.isnan(preds.forces[:, preds.offsets[1] : preds.offsets[2]]).all()


def test_label_only_members_stay_out_of_u(w_frames):
    spec = resolve_ensemble({
        "name": "with-labeller",
        "energy_member": "labeller",
        "members": [
            {"name": "7net-0", "kind": "sevenn", "model": "7net-0", "rmse": 0.3},
            {"name": "chgnet-0.3.0", "kind": "chgnet", "model": "0.3.0", "rmse": 0.4},
            {"name": "labeller", "kind": "chgnet", "model": "0.2.0", "in_u": False},
        ],
    })
    assert isinstance(spec, EnsembleSpec) and spec.force_member == "7net-0"
    preds = predict_ensemble(spec, w_frames[:2])
    assert preds.u_forces().shape[0] == 2
    np.testing.assert_allclose(preds.uncertainty(1), uncertainty(preds.forces[:2], preds.offsets, [0.3, 0.4]))


def test_predict_member_is_a_plain_picklable_task(w_frames):
    spec = resolve_ensemble("offline-fast").member("chgnet-0.2.0")
    task = pickle.loads(pickle.dumps((predict_member, spec, w_frames[:2])))
    result = task[0](task[1], task[2])
    back = pickle.loads(pickle.dumps(result))
    np.testing.assert_array_equal(back.energies, result.energies)
    assert back.member == "chgnet-0.2.0" and back.errors == {}
    # A mapping (as a Dask task might carry it) works too.
    again = predict_member(spec.model_dump(), w_frames[:1])
    np.testing.assert_array_equal(again.energies, result.energies[:1])
