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
