"""The loop on the paper's own W data, replayed: configurations from a data file with their provenance,
U computed by the loop exactly as `alloop score` computes it (an `in_u: false` label member stays out of
U), the paper's strict routing, and energy references fitted only where both sources are trustworthy."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from alloop.ensemble import predict_ensemble, resolve_ensemble
from alloop.generate import source_candidates
from tests.campaigns import REPLAYED_PAPER_MEMBERS, REPLAYED_W_ROUTING, generated_and_scored

CAMPAIGN = """\
name: w-replay
elements: [W]
workdir: run
""" + REPLAYED_PAPER_MEMBERS + REPLAYED_W_ROUTING + """\
  sources:
    - {{path: {npz}, indices: "0-29", name: general, per_iteration: 20}}
    - {{path: {npz}, indices: "1026-1030", name: dimer}}
min_distance: 1.0
selection: {{budget: 100}}
cluster: {{n_workers: 1}}
"""


@pytest.fixture(scope="module")
def scored(shared_data, tmp_path_factory):
    """A campaign's first iteration generated and scored (no fit needed for what is checked here)."""
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    root = tmp_path_factory.mktemp("replay")
    (root / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz, dft=npz))
    campaign, store, _ = generated_and_scored(root / "campaign.yaml")
    store.close()
    return campaign, npz


def test_data_file_entries_become_candidates_with_their_provenance(scored):
    campaign, npz = scored
    con = sqlite3.connect(campaign.database_path)
    rows = con.execute("SELECT kind, source_json FROM configuration ORDER BY id").fetchall()
    con.close()
    # iteration 0 takes the first 20 "general" entries and all 5 dimers
    assert len(rows) == 25 and {k for k, _ in rows} == {"dataset"}
    sources = [json.loads(s) for _, s in rows]
    assert [s["index"] for s in sources] == list(range(20)) + list(range(1026, 1031))
    assert {s["group"] for s in sources[:20]} == {"general"} and {s["group"] for s in sources[20:]} == {"dimer"}
    assert all(s["file"] == str(npz) for s in sources)
    # the next iteration gets the next 20 "general" entries (10 are left) and no dimers
    later = source_candidates(campaign.generate.sources, 1)
    assert [a.info["source"]["index"] for a in later] == list(range(20, 30))
    assert source_candidates(campaign.generate.sources, 2) == []


def test_the_loop_computes_the_same_u_as_alloop_score_without_the_label_only_member(scored):
    campaign, npz = scored
    spec = resolve_ensemble(campaign.ensemble)
    con = sqlite3.connect(campaign.database_path)
    stored = con.execute(
        "SELECT json_extract(c.source_json, '$.index'), u.u0, u.u1, u.u2, u.members, c.route FROM configuration c "
        "JOIN uncertainty u ON u.configuration_id = c.id ORDER BY c.id").fetchall()
    con.close()
    from alloop.io import read_labelled

    frames = read_labelled(npz)
    preds = predict_ensemble(spec, [frames[i] for i, *_ in stored])
    for v in (0, 1, 2):
        np.testing.assert_allclose([r[1 + v] for r in stored], preds.uncertainty(v), rtol=1e-12)
    assert json.loads(stored[0][4]) == ["eSEN-30M-OMat", "eqV2-31M-OMat", "SevenNet"]
    # strict U < U_c goes to the uMLIP, the rest (here the dimers among them) to DFT
    u1 = preds.uncertainty(1)
    assert [r[5] for r in stored] == ["umlip" if u < 0.3 else "dft" for u in u1]
    assert {r[5] for r in stored} == {"umlip", "dft"}


def test_umlip_labels_come_from_the_label_members(scored):
    campaign, npz = scored
    w = np.load(npz)
    names = list(w["model_names"])
    con = sqlite3.connect(campaign.database_path)
    row = con.execute(
        "SELECT json_extract(c.source_json, '$.index'), l.energy, l.backend FROM label l JOIN configuration c "
        "ON c.id = l.configuration_id WHERE l.source = 'umlip' ORDER BY c.id LIMIT 1").fetchone()
    con.close()
    i, energy, backend = row
    assert backend == "eqV2-31M-OAM|eqV2-31M-OMat"
    assert energy == pytest.approx(w["energy_per_atom_models"][names.index("2-eqV2-31")][i] * w["n_atoms"][i])


def test_an_iteration_with_nothing_new_to_score_goes_on_to_labelling(shared_data, tmp_path):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    # the data set's entries are all known after the first iteration: the second has nothing to score
    text = CAMPAIGN.format(npz=npz, dft=npz).replace('per_iteration: 20}', 'per_iteration: 30}').replace(
        '    - {path: ' + str(npz) + ', indices: "1026-1030", name: dimer}\n', '')
    (tmp_path / "campaign.yaml").write_text(text)
    campaign, store, cid = generated_and_scored(tmp_path / "campaign.yaml")
    from distributed import Client

    from alloop.controller.loop import Controller

    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        ctl = Controller(campaign, store, client)
        store.start_iteration(cid, 1)
        ctl.generate(1)
        assert store.configurations(cid, 1, status="selected") == []
        ctl.score(1)
    assert store.current_iteration(cid) == (1, "label")
    store.close()


def test_a_dft_budget_in_atoms_leaves_the_rest_unlabelled_and_says_why(shared_data, tmp_path):
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz, dft=npz).replace(
        "selection: {budget: 100}", "selection: {budget: 100, dft_budget_atoms: 60}"))
    campaign, store, _ = generated_and_scored(tmp_path / "campaign.yaml")
    store.close()
    con = sqlite3.connect(campaign.database_path)
    rows = con.execute("SELECT c.n_atoms, u.u1, c.route, c.status, c.reason FROM configuration c "
                       "JOIN uncertainty u ON u.configuration_id = c.id ORDER BY u.u1 DESC").fetchall()
    con.close()
    bound = [r for r in rows if r[1] >= 0.3]  # U sends these to DFT
    taken = [r for r in bound if r[2] == "dft"]
    left = [r for r in bound if r[2] is None]
    assert taken and left and len(taken) + len(left) == len(bound)
    assert sum(r[0] for r in taken) <= 60
    assert bound[0][2] == "dft"  # the highest U first (it fits)
    assert all(r[3] == "not_selected" and "selection.dft_budget_atoms = 60" in r[4] for r in left)
    assert all(r[2] == "umlip" for r in rows if r[1] < 0.3)  # uMLIP labels cost no DFT budget
