"""Which members label low-U configurations (one rule for the loop, `alloop sweep` and `alloop report`),
and the paper's RMSE table, written once in paper-11.yaml."""

from __future__ import annotations

import textwrap

import pytest

from alloop.ensemble import label_members, resolve_ensemble
from alloop.errors import MemberError
from alloop.paper import PAPER11_RMSE
from alloop.report.data import force_member


def test_the_campaigns_choice_wins_and_the_ensembles_fills_the_rest():
    spec = resolve_ensemble("offline", check_files=False)
    assert label_members(spec) == ("7net-0", "7net-0")
    assert label_members(spec, force_member="chgnet-0.3.0") == ("7net-0", "chgnet-0.3.0")
    with pytest.raises(MemberError, match="labels.energy_member 'mace' is not a member of ensemble 'offline'"):
        label_members(spec, energy_member="mace")


def test_an_ensemble_that_names_no_label_member_uses_its_most_accurate_one(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(textwrap.dedent("""\
        name: mine
        members:
          - {name: a, kind: chgnet, model: 0.3.0, rmse: 0.4}
          - {name: b, kind: chgnet, model: 0.2.0, rmse: 0.3}
    """))
    assert label_members(resolve_ensemble(path)) == ("b", "b")


def test_the_report_asks_the_same_rule_from_the_stored_campaign():
    assert force_member({"ensemble": "offline", "labels": {"force_member": None}}) == "7net-0"
    assert force_member({"ensemble": "offline", "labels": {"force_member": "chgnet-0.2.0"}}) == "chgnet-0.2.0"
    assert force_member({"ensemble": "/moved/away.yaml", "labels": {}}) is None


def test_the_replayed_paper_ensemble_takes_its_rmses_from_paper_11():
    replay = resolve_ensemble("paper-11-w-replay", check_files=False)
    assert tuple(m.rmse for m in replay.u_members) == PAPER11_RMSE
    assert replay.member("eqV2-31M-OAM").rmse is None  # labels only, out of U


def test_rmse_from_fills_only_the_members_without_an_rmse(tmp_path):
    (tmp_path / "table.yaml").write_text("name: table\nmembers:\n"
                                         "  - {name: a, kind: chgnet, model: 0.3.0, rmse: 0.25}\n"
                                         "  - {name: b, kind: chgnet, model: 0.2.0, rmse: 0.5}\n")
    (tmp_path / "mine.yaml").write_text("name: mine\nrmse_from: table.yaml\nmembers:\n"
                                        "  - {name: a, kind: chgnet, model: 0.3.0}\n"
                                        "  - {name: b, kind: chgnet, model: 0.2.0, rmse: 0.3}\n")
    spec = resolve_ensemble(tmp_path / "mine.yaml")
    assert [m.rmse for m in spec.members] == [0.25, 0.3]
