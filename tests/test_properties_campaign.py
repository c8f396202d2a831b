"""Properties in a campaign: the loop's hook after a fit stores what the potential and (once) the teacher predict,
`alloop properties CAMPAIGN.yaml` reads them back without recomputing, and `alloop report` shows them.

The campaign holds the paper's published W ACE as its iteration-0 potential; its teacher is a replayed member,
which knows only the paper's configurations: every teacher property is then "not computable", and the campaign
goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.campaigns import REPLAYED_PAPER_MEMBERS

CAMPAIGN = """\
name: w-properties
elements: [W]
workdir: run
""" + REPLAYED_PAPER_MEMBERS + """labels:
  energy_reference: {{method: none}}
  dft: {{backend: replay, replay: {{sources: [{npz}]}}}}
properties: {{properties: [lattice, elastic, vacancy, surfaces]}}
cluster: {{n_workers: 1}}
"""


@pytest.fixture(scope="module")
def campaign_with_properties(shared_data: Path, tmp_path_factory):
    from distributed import Client

    from alloop.config import load_campaign
    from alloop.controller.loop import Controller
    from alloop.state import Store

    root = tmp_path_factory.mktemp("properties")
    npz = shared_data / "uq_umlip_W" / "W_uq_umlip.npz"
    potential = str(shared_data / "uq_umlip_W" / "ace_potentials" / "3_ensemble_potential_0.yaml")
    (root / "campaign.yaml").write_text(CAMPAIGN.format(npz=npz))
    campaign = load_campaign(root / "campaign.yaml")
    store = Store.open(campaign.database_path)
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        ctl = Controller(campaign, store, client)
        store.start_iteration(ctl.cid, 0)
        store.save_potential(ctl.cid, 0, potential, None, 10, {}, {"method": "none"})
        ctl._properties(0, potential)  # what Controller.train runs after saving a fit
        first = store.property_results(ctl.cid)
        ctl._properties(0, potential)  # a resumed train stage: stored, not recomputed
        again = store.property_results(ctl.cid)
    store.close()
    return root / "campaign.yaml", first, again


def test_the_loop_stores_the_potential_and_the_teacher_once(campaign_with_properties):
    _, first, again = campaign_with_properties
    assert [r["subject"] for r in first] == ["potential", "teacher"]
    assert [r["created_at"] for r in again] == [r["created_at"] for r in first]
    pot = first[0]["result"]["per_element"][0]["values"]
    assert pot["lattice_constant"]["value"] == pytest.approx(3.17, rel=0.01)
    assert pot["vacancy"]["value"] > 0 and pot["surface_110"]["value"] > 0
    assert "sia_111" not in pot  # not in this campaign's property set
    teacher = first[1]["result"]
    assert teacher["model"] == "eqV2-31M-OAM"  # the campaign's energy member
    values = teacher["per_element"][0]["values"]
    assert all(v["value"] is None and v["reason"] for v in values.values())


def test_alloop_properties_on_the_campaign_reads_what_the_loop_stored(campaign_with_properties):
    campaign, first, _ = campaign_with_properties
    proc = subprocess.run([sys.executable, "-m", "alloop", "properties", str(campaign), "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "computing" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"] == first[0]["result"]
    rows = {r["property"]: r for r in out["comparison"]}
    assert rows["lattice_constant"]["dft_source"] == "li2020-elastic"
    assert rows["lattice_constant"]["teacher"] is None and rows["lattice_constant"]["teacher_reason"]


def test_the_report_shows_each_property_with_the_teacher_and_dft(campaign_with_properties, tmp_path):
    from alloop.report import build_report

    campaign, _, _ = campaign_with_properties
    page = build_report(campaign.parent / "run" / "alloop.db", tmp_path).read_text()
    assert "What the potentials predict" in page
    assert "li2020-elastic" in page and "iter 0" in page and "Not computable" in page
    assert (tmp_path / "properties.png").is_file()
