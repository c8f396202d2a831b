"""Defect motifs are relaxed by the label uMLIP before anyone labels them (DP-GEN's init step): an inserted
atom ends at an interstitial geometry, not 1.3 Å from a neighbour, and the relaxation is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.ensemble import resolve_ensemble
from alloop.generate.lattice import INTERSTITIALS, insert_interstitial, perfect_bulk
from alloop.generate.relaxation import RelaxSettings, relax_motifs
from alloop.properties import load_model

pytestmark = pytest.mark.slow  # SevenNet relaxes a dozen cells: a minute of CPU

W_A = 3.17
W_NN = W_A * np.sqrt(3) / 2  # 2.75 Å


@pytest.fixture(scope="module")
def sevennet():
    return load_model(member=resolve_ensemble("offline-fast").member("7net-0")).calculator()


def _closest(atoms) -> float:
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def test_every_bcc_interstitial_relaxes_to_physical_distances(sevennet):
    bulk, _ = perfect_bulk("bcc", W_A, 16, "W")
    built = [insert_interstitial(bulk, "bcc", W_A, kind) for kind in INTERSTITIALS["bcc"]]
    for a in built:
        a.info.update(kind="interstitial", generator={"interstitial": "?"})
    assert min(_closest(a) for a in built) < 0.5 * W_NN  # the crowdion insertion: 1.37 Å from its neighbour
    out = relax_motifs(built, sevennet, RelaxSettings(), min_distance=0.8, by="7net-0")
    for kind, a in zip(INTERSTITIALS["bcc"], out):
        assert not isinstance(a, str), a
        # a split interstitial shares its site: its pair is closer than the lattice's neighbours, never fused
        assert _closest(a) > 0.7 * W_NN, (kind, _closest(a))
        rec = a.info["generator"]["relaxed"]
        assert rec["by"] == "7net-0" and rec["energy_change_eV"] < 0 and 1 <= rec["steps"] <= 40
        assert a.info["kind"] == "interstitial" and len(a) == len(bulk) + 1


def test_a_relaxation_is_the_same_on_a_rerun_and_a_failing_model_rejects_with_its_reason(sevennet):
    bulk, _ = perfect_bulk("bcc", W_A, 16, "W")
    vac = bulk.copy()
    del vac[0]
    vac.info["kind"] = "vacancy"
    a, b = (relax_motifs([vac], sevennet, RelaxSettings(max_steps=5), 0.8, "7net-0")[0] for _ in range(2))
    np.testing.assert_array_equal(a.positions, b.positions)  # the perturbation is seeded by the cell

    from ase.calculators.calculator import Calculator

    class BrokenCalc(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=None, system_changes=None):
            raise RuntimeError("no weights")

    (reason,) = relax_motifs([vac], BrokenCalc(), RelaxSettings(), 0.8, "7net-0")
    assert reason == "the relaxation by 7net-0 failed: RuntimeError: no weights"


def test_the_md_starts_relaxed_by_the_label_member_no_longer_hold_a_dumbbell_1_8_A_apart(sevennet):
    """The campaign relaxes the exploration's defect starts as it relaxes the motifs (Controller._relaxed_starts):
    built as it is, the interstitial start's dumbbell is 1.79 Å apart (2.20 Å relaxed); the quickstart's first frame
    of it had γ = 944 and its trajectory stopped there in every iteration, a fifth of the convergence sample."""
    from alloop.explore.pool import exploration_starts
    from alloop.explore.settings import ExploreSettings
    from alloop.generate import GeneratorSettings

    starts = exploration_starts(["W"], GeneratorSettings(max_atoms=16), ExploreSettings(), seed=0, iteration=1, stream=0)
    (inter,) = [a for a in starts if a.info["kind"] == "interstitial"]
    assert _closest(inter) < 1.85
    (relaxed,) = relax_motifs([inter], sevennet, RelaxSettings(), min_distance=0.8, by="7net-0")
    assert not isinstance(relaxed, str), relaxed
    assert _closest(relaxed) > 2.1
