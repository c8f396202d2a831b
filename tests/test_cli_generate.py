"""`alloop generate CAMPAIGN -o OUT`: a preview of the next iteration's candidates, nothing stored."""

from __future__ import annotations

import json
import textwrap

import ase.io

from alloop.cli import main

CAMPAIGN = textwrap.dedent("""\
    name: genome-preview
    elements: [Mo, Nb, Ta, W]
    seed: 3
    generate:
      counts: {strained_bulk: 2, rattled_bulk: 0, vacancy: 0, interstitial: 0, surface: 0, dimer: 0, compressed: 0}
      genome:
        families: [stacking_fault, surface, dimer]
        stacking_fault_points: 1
        surface_facets: ["110"]
        dimers_per_pair: 1
        decoration: {draws: 8, keep: 2}
    train:
      n_functions: 12
      nradmax_by_orders: [6, 2]
      lmax_by_orders: [0, 2]
    """)


def test_generate_previews_kinds_compositions_and_sizes_without_a_database(tmp_path, capsys):
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN)
    out = tmp_path / "candidates.extxyz"
    assert main(["generate", str(campaign), "-o", str(out)]) == 0
    table = capsys.readouterr().out
    frames = ase.io.read(out, ":")
    kinds = [a.info["kind"] for a in frames]
    assert kinds.count("strained_bulk") == 2 and kinds.count("stacking_fault") == 4 and kinds.count("surface") == 2
    assert kinds.count("dimer") == 10  # every Mo/Nb/Ta/W pair once
    params = json.loads(frames[-1].info["generator"])
    assert params["family"] == "genome" and len(params["pair"]) == 2
    # what the loop's iteration 0 adds first: the energy-reference calibration cells, one bulk cell per element and more
    assert kinds[: kinds.count("calibration")] == ["calibration"] * kinds.count("calibration") and kinds.count("calibration") >= 4
    decorated = json.loads(next(a for a in frames if a.info["kind"] == "stacking_fault").info["generator"])
    assert decorated["decoration"]["method"] == "maxvol" and abs(sum(decorated["composition"].values()) - 1) < 1e-5
    for kind in ("strained_bulk", "stacking_fault", "surface", "dimer", "total"):
        assert kind in table
    assert "4-ary" in table and "Mo" in table.splitlines()[0]
    assert not (tmp_path / "run").exists()  # nothing written beside the campaign: no database


def test_generate_reports_bad_settings_as_errors(tmp_path, capsys):
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(CAMPAIGN.replace("draws: 8, keep: 2", "draws: 1, keep: 2"))
    assert main(["generate", str(campaign), "-o", str(tmp_path / "x.extxyz")]) == 2
    assert "keep" in capsys.readouterr().err


def test_generate_draws_for_the_iteration_after_the_last_fit_recorded_in_the_database(tmp_path, capsys, shared_data):
    from alloop.state import Store

    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(textwrap.dedent("""\
        name: w-preview
        elements: [W]
        generate:
          counts: {strained_bulk: 1, rattled_bulk: 0, vacancy: 0, interstitial: 0, surface: 0, dimer: 0, compressed: 0}
          genome: {families: [surface], surface_facets: ["100"]}
        """))
    potential = shared_data / "uq_umlip_W" / "ace_potentials" / "0_ensemble_potential_0.yaml"
    store = Store.open(tmp_path / "run" / "alloop.db")
    cid = store.open_campaign("w-preview", "{}")
    store.start_iteration(cid, 0)
    store.save_potential(cid, 0, str(potential), None, 10, {}, {})  # iteration 0 moves on to 'evaluate'
    store.close()

    assert main(["generate", str(campaign), "-o", str(tmp_path / "next.extxyz")]) == 0
    err = capsys.readouterr().err
    assert "iteration 1" in err and str(potential) in err
    frames = ase.io.read(tmp_path / "next.extxyz", ":")
    assert [a.info["kind"] for a in frames] == ["strained_bulk", "surface"]
