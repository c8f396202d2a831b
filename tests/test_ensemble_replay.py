"""A `kind: replay` member serves a model's stored predictions: with the paper's W set, the paper's
11-member ensemble runs offline and gives the paper's selection exactly."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from alloop import paper, uq
from alloop.ensemble import predict_ensemble, predict_member, resolve_ensemble
from alloop.errors import MemberError
from alloop.io import read_labelled, write_extxyz


@pytest.fixture(scope="module")
def w_file(shared_data):
    return shared_data / "uq_umlip_W" / "W_uq_umlip.npz"


@pytest.fixture(scope="module")
def paper_replay(w_file):
    return resolve_ensemble({"base": "paper-11-w-replay", "checkpoint_dir": str(w_file.parent)})


def test_the_paper_ensemble_replayed_gives_the_published_selection(paper_replay, w_file):
    frames = read_labelled(w_file)
    preds = predict_ensemble(paper_replay, frames)
    assert not preds.failed().any()
    assert [m.name for m in paper_replay.u_members] == list(paper.PAPER11_CHECKPOINTS)
    u = preds.uncertainty(1)
    for u_c, expected in paper.W_PUBLISHED_UMLIP_CONFIGS.items():
        assert int(uq.partition(u, u_c).sum()) == expected
    # energies of the label member are the stored per-atom values times the atom count
    w = np.load(w_file)
    k = list(w["model_names"]).index("2-eqV2-31")
    np.testing.assert_allclose(preds.energies[preds.index("eqV2-31M-OAM")], w["energy_per_atom_models"][k] * w["n_atoms"])


def test_a_configuration_missing_from_the_file_fails_alone_with_its_name(paper_replay, w_file):
    frames = read_labelled(w_file)[:3]
    stranger = bulk("W", "bcc", a=3.3, cubic=True)
    pred = predict_member(paper_replay.member("SevenNet"), [frames[0], stranger, frames[2]])
    assert set(pred.errors) == {1}
    assert "W2" in pred.errors[1] and "no stored prediction of model '7-7net'" in pred.errors[1]
    assert np.isfinite(pred.forces[0]).all() and np.isfinite(pred.forces[2]).all()


def test_a_model_the_file_does_not_hold_is_named_with_the_ones_it_does(w_file):
    from alloop.ensemble import load_member

    with pytest.raises(MemberError, match=r"no predictions of model 'mace-mp-0'.*13-esen-omat"):
        load_member({"name": "x", "kind": "replay", "checkpoint": str(w_file), "model": "mace-mp-0"})
    with pytest.raises(MemberError, match="needs model: NAME"):
        resolve_ensemble({"name": "e", "members": [{"name": "x", "kind": "replay", "checkpoint": str(w_file)}]}, check_files=False)


def test_extxyz_with_per_model_arrays_replays_too(tmp_path):
    frames = []
    rng = np.random.default_rng(0)
    for i in range(3):
        a = bulk("Mo", "bcc", a=3.15, cubic=True).repeat(2)
        a.rattle(0.05, seed=i)
        a.arrays["forces__m1"] = rng.normal(size=(len(a), 3))
        a.info["energy__m1"] = -10.0 * len(a) + i
        frames.append(a)
    path = write_extxyz(tmp_path / "stored.extxyz", frames)
    pred = predict_member({"name": "m1", "kind": "replay", "checkpoint": str(path), "model": "m1"}, read_labelled(path, require_forces=False))
    assert not pred.errors
    np.testing.assert_allclose(pred.energies, [a.info["energy__m1"] for a in frames])
    np.testing.assert_allclose(pred.forces[2], frames[2].arrays["forces__m1"], atol=1e-8)
