"""The change guard compares the contents of the files a campaign refers to, not only their paths (issue 21
item 2): an ensemble YAML whose RMSEs were edited, or a replay data file replaced by another, is refused like a
binding change of the campaign file unless --accept-changes, which records it as an event; a file that was only
touched (same content) passes."""

from __future__ import annotations

import os
import sqlite3

import pytest
import yaml

from alloop.errors import CampaignChangedError
from tests.campaigns import REPLAYED_W_ROUTING

CAMPAIGN = """\
name: w-files
elements: [W]
workdir: run
ensemble: {ensemble}
""" + REPLAYED_W_ROUTING + """\
  sources:
    - {{path: {npz}, indices: "0-9"}}
cluster: {{n_workers: 1}}
"""


def _ensemble(npz, rmse=0.27751):
    return {"name": "two-replayed", "energy_member": "eqV2", "force_member": "eqV2", "members": [
        {"name": "SevenNet", "kind": "replay", "checkpoint": str(npz), "model": "7-7net", "rmse": rmse},
        {"name": "eqV2", "kind": "replay", "checkpoint": str(npz), "model": "10-eqV2-31-omat", "rmse": 0.243286}]}


def _reconcile(campaign_file, accept=False):
    """What `alloop run [--accept-changes]` does first: the controller compares the campaign with its database."""
    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    campaign = load_campaign(campaign_file)
    store = Store.open(campaign.database_path)
    try:
        Controller(campaign, store, None, accept_changes=accept)._reconcile_config()
    finally:
        store.close()
    return campaign.database_path


def test_edited_ensemble_file_and_replaced_replay_data_are_refused_until_accepted(shared_data, tmp_path):
    from alloop.io import read_labelled, write_extxyz

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    frames = read_labelled(npz)
    dft = write_extxyz(tmp_path / "dft.extxyz", frames[:5])
    ens = tmp_path / "ensemble.yaml"
    ens.write_text(yaml.safe_dump(_ensemble(npz)))
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN.format(ensemble=ens, dft=dft, npz=npz))
    db = _reconcile(path)  # the first run records every file
    con = sqlite3.connect(db)
    roles = {r for (r,) in con.execute("SELECT role FROM file_fingerprint")}
    con.close()
    assert roles == {"ensemble file", "checkpoint of member SevenNet", "checkpoint of member eqV2", "replay data 1",
                     "candidate source 1"}

    os.utime(ens)  # touched, same content: no change
    _reconcile(path)

    ens.write_text(yaml.safe_dump(_ensemble(npz, rmse=0.5)))  # an Eq. 2 weight edited: U would change
    with pytest.raises(CampaignChangedError, match=f"ensemble file {ens} changed") as exc:
        _reconcile(path)
    assert "--accept-changes" in str(exc.value)
    with pytest.raises(CampaignChangedError):  # still refused: nothing was recorded
        _reconcile(path)
    _reconcile(path, accept=True)
    _reconcile(path)  # accepted once: the new content is the campaign's now
    con = sqlite3.connect(db)
    (msg,) = con.execute("SELECT message FROM event WHERE message LIKE 'files changed%'").fetchone()
    con.close()
    assert msg.startswith("files changed since the last run (1, accepted with --accept-changes): ensemble file")

    write_extxyz(dft, frames[5:10])  # the same path, other DFT labels
    with pytest.raises(CampaignChangedError, match="replay data 1 .*dft.extxyz changed"):
        _reconcile(path)


def test_the_files_an_ensemble_names_as_base_or_rmse_table_are_guarded_too(shared_data, tmp_path):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    members = _ensemble(npz)["members"]
    table = tmp_path / "rmse.yaml"  # the Eq. 2 weights kept in a file of their own, as paper-11.yaml keeps the paper's
    table.write_text(yaml.safe_dump({"name": "table", "members": [{k: m[k] for k in ("name", "kind", "model", "rmse")}
                                                                  for m in members]}))
    parent = tmp_path / "parent.yaml"
    parent.write_text(yaml.safe_dump({"name": "parent", "rmse_from": str(table),
                                      "members": [{k: v for k, v in m.items() if k != "rmse"} for m in members]}))
    ens = tmp_path / "ensemble.yaml"
    ens.write_text(yaml.safe_dump({"base": str(parent), "name": "mine"}))
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN.format(ensemble=ens, dft=write_dft(tmp_path, npz), npz=npz))
    db = _reconcile(path)
    con = sqlite3.connect(db)
    roles = dict(con.execute("SELECT role, path FROM file_fingerprint"))
    con.close()
    assert (roles["ensemble file"], roles["ensemble base"], roles["ensemble RMSE table"]) == (str(ens), str(parent), str(table))
    # the base's rmse_from table is read through the base: an edit there is an edit of the campaign's U
    table.write_text(table.read_text().replace("0.27751", "0.5"))
    with pytest.raises(CampaignChangedError, match=f"ensemble RMSE table {table} changed") as exc:
        _reconcile(path)
    assert "ensemble base" not in str(exc.value)  # the base itself is as it was


def write_dft(tmp_path, npz):
    from alloop.io import read_labelled, write_extxyz

    return write_extxyz(tmp_path / "dft.extxyz", read_labelled(npz)[:5])


def test_a_default_changed_by_a_newer_alloop_keeps_its_stored_value_where_it_binds_and_applies_where_it_steers(
        shared_data, tmp_path):
    import json

    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    ens = tmp_path / "ensemble.yaml"
    ens.write_text(yaml.safe_dump(_ensemble(npz)))
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN.format(ensemble=ens, dft=write_dft(tmp_path, npz), npz=npz))  # sets neither seed nor budget
    db = _reconcile(path)
    # as an older alloop would have stored it, had its defaults been seed 7 (binding: every random choice made so far
    # drew from it) and a budget of 11 configurations per iteration (only steers what is still to come)
    con = sqlite3.connect(db)
    stored = json.loads(con.execute("SELECT config_json FROM campaign").fetchone()[0])
    stored["seed"], stored["selection"]["budget"] = 7, 11
    with con:
        con.execute("UPDATE campaign SET config_json=?", (json.dumps(stored),))
    con.close()

    def reconciled():
        store = Store.open(db)
        try:
            controller = Controller(load_campaign(path), store, None)
            controller._reconcile_config()
            return controller.c, store.events(controller.cid, 50)
        finally:
            store.close()

    campaign, events = reconciled()
    assert (campaign.seed, campaign.selection.budget) == (7, 40)
    kept = [e["message"] for e in events if "keeps that value" in e["message"]]
    assert kept == ["seed: this alloop's default is 0, but the campaign was run with 7 and its file does not set the key, "
                    "so it keeps that value (what the database holds was made with it; write the key in the campaign "
                    "file to change it)"]
    applied = [e["message"] for e in events if e["message"].startswith("campaign file changed")]
    assert applied == ["campaign file changed since the last run (1 setting(s), applied): selection.budget: 11 -> 40 "
                       "(a changed default)"]
    campaign, again = reconciled()  # reported once: the next run finds nothing new to say
    assert campaign.seed == 7 and len(again) == len(events)

    # written in the file, the same default is the user's choice, and it contradicts the database
    path.write_text(path.read_text() + "seed: 0\n")
    with pytest.raises(CampaignChangedError, match="the campaign file changes seed since the last run"):
        _reconcile(path)
