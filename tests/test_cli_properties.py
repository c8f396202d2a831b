"""`alloop properties`: the command line of what a potential predicts (its campaign mode is exercised in
tests/test_properties_campaign.py)."""

from __future__ import annotations

import json

import pytest

from alloop.cli import main
from alloop.config import load_campaign
from alloop.errors import ConfigError


@pytest.fixture(scope="module")
def paper_ace(shared_data):
    return shared_data / "uq_umlip_W" / "ace_potentials" / "3_ensemble_potential_0.yaml"


def test_help_names_every_property_group_and_the_dft_table(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["properties", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for word in ("lattice", "elastic", "vacancy", "interstitials", "surfaces", "gsfe", "mixing", "reference.yaml", "n/c"):
        assert word in out


def test_a_potential_against_dft_as_json_and_plots(paper_ace, tmp_path, capsys):
    assert main(["properties", str(paper_ace), "--properties", "lattice", "elastic", "--json", "--plots", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["property"]: r for r in out["comparison"]}
    assert rows["lattice_constant"]["value"] == pytest.approx(3.17, rel=0.01)
    assert rows["C44"]["dft_source"] == "li2020-elastic" and "li2020-elastic" in out["dft_sources"]
    assert "PBE" in out["dft_sources"]["li2020-elastic"]["method"]
    assert out["teacher"] is None and "vacancy" not in rows
    assert (tmp_path / "eos_W.png").is_file()


def test_the_cohesive_energy_needs_an_isolated_atom_energy(paper_ace, capsys):
    assert main(["properties", str(paper_ace), "--properties", "lattice", "--atom-energy", "W=0.0"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "cohesive energy" in ln)
    assert "n/c" not in line and float(line.split()[4]) > 5  # a0's energy on the paper's VASP scale is −12.96 eV/atom


@pytest.mark.parametrize("args, message", [
    (["--reference", "7net-0"], "--reference needs -e ENSEMBLE"),
    ([], "give a potential, a campaign file, or -e ENSEMBLE"),
    (["missing.yaml"], "ACE potential not found"),
])
def test_bad_invocations_say_what_to_give(args, message, capsys):
    assert main(["properties", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_campaign_setting_chooses_the_groups_and_rejects_unknown_ones(tmp_path):
    base = "name: c\nelements: [W]\nensemble: offline-fast\n"
    path = tmp_path / "campaign.yaml"
    path.write_text(base + "properties: {properties: [lattice, vacancy], teacher: false}\n")
    campaign = load_campaign(path)
    assert campaign.properties.properties == ["lattice", "vacancy"] and not campaign.properties.teacher
    path.write_text(base + "properties: {properties: [lattice, phonons]}\n")
    with pytest.raises(ConfigError, match="properties"):
        load_campaign(path)
    path.write_text(base)
    assert load_campaign(path).properties.enabled  # on by default
