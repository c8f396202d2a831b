"""examples/monbtaw-quickstart: the laptop campaign and its cluster-scale counterpart are valid campaign files
and say what their comments claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloop.cli import main
from alloop.config import load_campaign
from alloop.generate.genome.settings import FAMILIES

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "monbtaw-quickstart"


@pytest.mark.parametrize("name", ["campaign.yaml", "cluster.yaml"])
def test_alloop_validate_accepts_the_monbtaw_example(name, capsys):
    assert main(["validate", str(EXAMPLE / name)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "Mo, Nb, Ta, W" in out


def test_the_quickstart_is_laptop_sized_with_gpaw_and_the_offline_ensemble():
    c = load_campaign(EXAMPLE / "campaign.yaml")
    assert c.ensemble == "offline-fast"
    assert c.labels.dft.backend == "gpaw" and c.cluster.engine == "local"
    assert c.generate.genome is not None and c.generate.genome.max_atoms <= 48
    assert c.generate.genome.decoration.method == "maxvol"


def test_the_cluster_campaign_is_the_whole_genome_with_vasp_on_slurm():
    c = load_campaign(EXAMPLE / "cluster.yaml")
    genome = c.generate.genome
    assert genome is not None and set(genome.families) == set(FAMILIES) and genome.max_atoms == 160
    assert {gb.sigma for gb in genome.grain_boundaries} >= {3, 5, 9, 11}
    assert c.labels.dft.backend == "vasp" and c.labels.dft.batch is not None
    assert c.labels.dft.batch.scheduler == "slurm"
    assert c.cluster.engine == "slurm" and c.cluster.ensemble_pool is not None
    assert "--gres=gpu:1" in c.cluster.ensemble_pool.extra_directives
    assert c.train.basis == "paper-MoNbTaW"
    assert 4 * c.train.n_functions == 3656  # the paper's count; tests/test_basis.py measures what pyace builds
