"""`alloop score` and `alloop weights` on a few small configurations of the paper's W data."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import yaml
from ase.io import read

from alloop.cli import score, weights
from alloop.ensemble import resolve_ensemble
from alloop.io import read_labelled, write_extxyz

import sevenn  # noqa: F401  (a real part: missing means failing)
import chgnet  # noqa: F401  (a real part: missing means failing)

# Bulk cells (2 atoms), a dimer at 1.5 Å, a 12-atom surface slab.
_W_PICK = (1, 3, 10, 24, 1026, 90)


def _cli(module, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="alloop")
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args([module.__name__.rsplit(".", 1)[-1], *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def w_small(shared_data, tmp_path_factory):
    frames = read_labelled(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    return write_extxyz(tmp_path_factory.mktemp("w") / "w_small.extxyz", [frames[i] for i in _W_PICK])


def test_score_writes_u_and_reports_error_correlation(w_small, tmp_path, capsys):
    out = tmp_path / "scored.extxyz"
    assert _cli(score, str(w_small), "-e", "offline-fast", "-o", str(out), "--plots", str(tmp_path / "plots")) == 0
    captured = capsys.readouterr()
    frames = read(out, ":")
    assert len(frames) == len(_W_PICK)
    for a in frames:
        assert {"U", "U0", "U1", "U2", "umlip_energy", "dF"} <= set(a.info)
        assert a.arrays["umlip_forces"].shape == (len(a), 3) and a.arrays["umlip_max_deviation"].shape == (len(a),)
        # The reference (DFT) forces are kept as the structure's forces.
        assert a.get_forces().shape == (len(a), 3)
    u = np.array([a.info["U"] for a in frames])
    assert u[4] == max(u)  # the 1.5 Å dimer
    assert "Spearman rho(U, dF): U0" in captured.out
    assert "7net-0: 6 structures in" in captured.err and "wrote" in captured.err
    assert (tmp_path / "plots" / "u_vs_force_error.png").stat().st_size > 10_000
    assert (tmp_path / "plots" / "coverage.png").stat().st_size > 10_000


def test_score_unlabelled_input_and_bad_paths(tmp_path, capsys):
    from ase.build import bulk

    src = write_extxyz(tmp_path / "bare.extxyz", [bulk("W", "bcc", a=3.17, cubic=True)])
    assert _cli(score, str(src), "-e", "offline-fast", "-o", str(tmp_path / "o.extxyz")) == 0
    assert "dF" not in read(tmp_path / "o.extxyz").info
    assert _cli(score, str(tmp_path / "missing.extxyz"), "-o", str(tmp_path / "x.extxyz")) == 2
    assert "structure file not found" in capsys.readouterr().err
    assert _cli(score, str(src), "-e", "paper-11", "-o", str(tmp_path / "x.extxyz")) == 2
    assert "checkpoint of ensemble member" in capsys.readouterr().err


def test_weights_measures_rmse_and_writes_a_loadable_ensemble(w_small, tmp_path, capsys):
    out = tmp_path / "weighted.yaml"
    assert _cli(weights, str(w_small), "-e", "offline-fast", "-o", str(out)) == 0
    text = out.read_text()
    assert text.startswith("# Written by `alloop weights`")
    spec = resolve_ensemble(out)
    assert spec.name == "offline-fast-weighted"
    rmse = spec.rmse()
    assert rmse is not None and (rmse > 0).all()
    np.testing.assert_allclose(spec.weights().sum(), 1.0)
    assert [m.model for m in spec.members] == ["7net-0", "0.3.0", "0.2.0"]
    body = yaml.safe_load(text)
    assert body["force_member"] == "7net-0"


def test_score_warns_of_a_member_a_campaign_would_stop_for(shared_data, tmp_path, capsys):
    """The campaign's rule (alloop.ensemble.routing.failing_members, issue 21): a U member without predictions for
    more than guard.max_member_failure_share of the structures is named in a warning line."""
    from ase.build import bulk

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    frames = read_labelled(npz)
    stranger = bulk("W", "bcc", a=3.3, cubic=True)  # not in the replayed file: no member has it
    src = write_extxyz(tmp_path / "in.extxyz", [frames[i] for i in (1, 3, 10, 24)] + [stranger])
    (tmp_path / "ens.yaml").write_text(yaml.safe_dump({"name": "two-replayed", "members": [
        {"name": "SevenNet", "kind": "replay", "checkpoint": str(npz), "model": "7-7net"},
        {"name": "eqV2", "kind": "replay", "checkpoint": str(npz), "model": "10-eqV2-31-omat"}]}))
    assert _cli(score, str(src), "-e", str(tmp_path / "ens.yaml"), "-o", str(tmp_path / "o.extxyz")) == 0
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: member")]
    assert len(warnings) == 2, err
    assert warnings[0].startswith("warning: member 'SevenNet' failed (1 of 5 configurations without its prediction): e.g. ")
    assert warnings[0].endswith("a campaign would stop this iteration (guard.max_member_failure_share = 10%)")
