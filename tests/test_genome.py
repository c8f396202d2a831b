"""The defect genome: each family's cells, their decoration across the composition simplex, and MaxVol."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from alloop.errors import ConfigError
from alloop.generate import GeneratorSettings, KindCounts, generate_candidates
from alloop.generate.genome import DecorationSettings, GenomeSettings, GrainBoundarySpec
from alloop.generate.genome.cell import height
from alloop.generate.genome.decorate import draw_compositions, site_counts
from alloop.structures import config_hash, validate_atoms
from alloop.train import FitSettings
from alloop.train.select import active_set_log_volume

NO_MOTIFS = KindCounts(**dict.fromkeys(KindCounts.model_fields, 0))
MONBTAW = ["Mo", "Nb", "Ta", "W"]
# a small basis keeps the MaxVol tests in seconds
SMALL_BASIS = FitSettings(n_functions=12, nradmax_by_orders=[6, 2], lmax_by_orders=[0, 2])


def _genome(family: str, elements=("W",), lattice="bcc", **genome) -> list:
    g = GenomeSettings(families=[family], decoration=DecorationSettings(method="random", draws=2, keep=1), **genome)
    settings = GeneratorSettings(counts=NO_MOTIFS, lattice=lattice, genome=g)
    return generate_candidates(list(elements), settings, np.random.default_rng(1))


def _check(structures, kind: str, max_atoms: int = 160) -> None:
    assert structures and all(a.info["kind"] == kind for a in structures)
    for atoms in structures:
        assert atoms.pbc.all() and len(atoms) <= max_atoms
        assert np.linalg.det(atoms.cell[:]) > 0  # right-handed: pyace refuses other cells
        validate_atoms(atoms, 1.7)  # bonds well above generate.min_distance: no overlapping atoms
        json.dumps(atoms.info["generator"])
        assert atoms.info["generator"]["family"] == "genome"


def test_grain_boundaries_are_bicrystals_with_two_boundaries_a_cutoff_apart():
    specs = [GrainBoundarySpec(sigma=3, axis=(1, 1, 0), type="tilt"), GrainBoundarySpec(sigma=5, axis=(1, 0, 0), type="twist")]
    out = _genome("grain_boundary", grain_boundaries=specs)
    _check(out, "grain_boundary")
    assert [(a.info["generator"]["sigma"], a.info["generator"]["type"]) for a in out] == [(3, "tilt"), (5, "twist")]
    for atoms in out:
        p = atoms.info["generator"]
        assert p["boundary_separation"] > 5.0
        # along the normal the grain label changes exactly twice (two boundaries), and the upper grain
        # is thicker than the boundary separation less one interplanar spacing
        z = atoms.get_scaled_positions()[:, 2] * height(atoms.cell, 2)
        upper = atoms.arrays["grain"] == 1
        inside = (z > z[upper].min() + 0.1) & (z < z[upper].max() - 0.1)
        assert not np.any(inside & ~upper)
        assert np.ptp(z[upper]) > p["boundary_separation"] - 2.3
    assert out[0].info["generator"]["angle_deg"] == pytest.approx(70.5288, abs=1e-3)


def test_dislocations_bcc_and_fcc():
    out = _genome("dislocation", elastic_constants={"C11": 523, "C12": 203, "C44": 160})
    _check(out, "dislocation")
    names = [a.info["generator"]["dislocation"] for a in out]
    assert names == ["screw_111", "edge_111_110", "edge_100_100", "edge_100_110"]
    assert out[0].info["generator"]["core_separation"] > 5.0
    assert out[1].info["generator"]["elastic_source"] == "generate.genome.elastic_constants"
    fcc = _genome("dislocation", elements=("Cu",), lattice="fcc")
    _check(fcc, "dislocation")
    assert fcc[0].info["generator"]["elastic_constants_GPa"] == {"C11": 168.0, "C12": 121.0, "C44": 75.4}


def test_the_111_edge_is_a_periodic_dipole_with_no_atom_added_or_lost():
    w = _genome("dislocation", elastic_constants={"C11": 523, "C12": 203, "C44": 160})[1]  # W: elastically isotropic
    alloy = _genome("dislocation", elements=MONBTAW)[1]  # composition mean of the table: Zener ratio 0.92
    for atoms in (w, alloy):
        p = atoms.info["generator"]
        assert (p["dislocation"], p["cell"], p["burgers"]) == ("edge_111_110", "dipole", "1/2<111>")
        assert atoms.pbc.all() and len(p["core_positions"]) == 2
        assert p["core_separation"] > 5.0  # the two cores (and their images) a cutoff apart
        assert len(atoms) == round(atoms.get_volume() / (p["a"] ** 3 / 2))  # a dipole conserves the bcc sites
        nn = np.sqrt(3) / 2 * p["a"]
        assert atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)].min() > 0.75 * nn
    # the anisotropic field is degenerate at Zener ratio 1: W's field is taken half a percent off it, recorded
    assert w.info["generator"]["field_C44_GPa"] == pytest.approx(1.005 * (523 - 203) / 2)
    assert "field_C44_GPa" not in alloy.info["generator"]


def test_crack_tips_open_behind_the_tip_and_draw_k_from_the_range():
    out = _genome("crack", cracks_per_system=1, stress_intensity=(1.0, 2.0))
    _check(out, "crack")
    assert [a.info["generator"]["system"] for a in out] == ["(100)[010]", "(110)[001]", "(110)[1-10]"]
    for atoms in out:
        assert 1.0 <= atoms.info["generator"]["K_I_MPa_sqrt_m"] <= 2.0
        assert atoms.info["generator"]["elastic_source"].startswith("experimental")
        cell = atoms.cell.lengths()
        span = np.ptp(atoms.positions[:, :2], axis=0)
        assert np.all(cell[:2] - span >= 8.0 - 1e-6)  # the vacuum gap


def test_stacking_faults_tilt_the_cell_by_the_shift():
    out = _genome("stacking_fault", stacking_fault_points=3)
    _check(out, "stacking_fault")
    assert [(a.info["generator"]["plane"], a.info["generator"]["shift_fraction"]) for a in out] == [
        (p, f) for p in ("110", "112") for f in (0.25, 0.5, 0.75)]
    for atoms in out:
        assert atoms.cell[2, 0] == pytest.approx(atoms.info["generator"]["shift"])
        assert atoms.info["generator"]["fault_spacing"] > 5.0
    fcc = _genome("stacking_fault", elements=("Cu",), lattice="fcc", stacking_fault_points=1)
    assert [a.info["generator"]["plane"] for a in fcc] == ["111"]


def test_surfaces_on_four_bcc_facets_are_thicker_than_the_cutoff_with_vacuum():
    out = _genome("surface")
    _check(out, "surface")
    assert [a.info["generator"]["facet"] for a in out] == ["100", "110", "111", "112"]
    for atoms in out:
        assert atoms.info["generator"]["thickness"] > 5.0 and atoms.info["generator"]["vacuum"] >= 8.0 - 1e-6


def test_point_defect_clusters():
    vac = _genome("vacancy_cluster", vacancy_cluster_sizes=[3])
    sia = _genome("interstitial_cluster", interstitial_cluster_sizes=[2])
    _check(vac, "vacancy_cluster")
    _check(sia, "interstitial_cluster")
    assert len(vac[0]) == 2 * np.prod(vac[0].info["generator"]["supercell"]) - 3
    assert len(sia[0]) == 2 * np.prod(sia[0].info["generator"]["supercell"]) + 2
    sites, n = sia[0].info["generator"]["sites"], len(sia[0])
    lengths = [sia[0].get_distance(site, n - 2 + k, mic=True) for k, site in enumerate(sites)]
    a = sia[0].info["generator"]["a"]
    assert lengths == pytest.approx([2 * 0.173 * np.sqrt(3) * a] * 2)  # two parallel <111> dumbbells


def test_dimers_and_trimers_cover_every_species_pair_with_seeded_distances():
    out = _genome("dimer", elements=MONBTAW, dimers_per_pair=2) + _genome("trimer", elements=MONBTAW, trimers_per_triple=1)
    dimers = [a for a in out if a.info["kind"] == "dimer"]
    pairs = {tuple(sorted(a.get_chemical_symbols())) for a in dimers}
    assert len(pairs) == 10 and len(dimers) == 20
    assert len({a.info["generator"]["distance"] for a in dimers}) == 20
    trimers = [a for a in out if a.info["kind"] == "trimer"]
    assert len(trimers) == 20
    for atoms in dimers + trimers:
        d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
        assert np.all(d >= 1.5 - 1e-9) and atoms.pbc.all()
    again = _genome("dimer", elements=MONBTAW, dimers_per_pair=2)
    assert [config_hash(a) for a in again] == [config_hash(a) for a in dimers]


def test_cells_above_max_atoms_are_skipped_with_a_warning(caplog):
    out = _genome("dislocation", max_atoms=60, elastic_constants={"C11": 523, "C12": 203, "C44": 160})
    assert [a.info["generator"]["dislocation"] for a in out] == ["screw_111", "edge_100_100"]  # 54 atoms each
    # The cylinder cell's count (81 or 82) depends on which atoms round into its radius on this machine, so the
    # test checks what the warning promises: each skipped cell named, with its size above the limit.
    skipped = {r.args[3]["dislocation"]: r.args[1] for r in caplog.records if r.getMessage().startswith("skipping a")}
    assert set(skipped) == {"edge_111_110", "edge_100_110"}
    assert skipped["edge_111_110"] == 72 and skipped["edge_100_110"] > 60


def test_compositions_cover_the_simplex_and_respect_bounds():
    rng = np.random.default_rng(0)
    comps = draw_compositions(MONBTAW, DecorationSettings(), 400, rng)
    x = np.array([[c[el] for el in MONBTAW] for c in comps])
    assert np.allclose(x.sum(axis=1), 1.0, atol=1e-5)
    n_present = (x > 0).sum(axis=1)
    assert set(n_present) == {1, 2, 3, 4}  # pure, binary, ternary and quaternary
    assert np.all(x.max(axis=0) > 0.99) and np.all(x.min(axis=0) == 0)
    bounded = draw_compositions(MONBTAW, DecorationSettings(bounds={"W": (0.1, 0.3)}), 50, rng)
    assert all(0.1 <= c["W"] <= 0.3 for c in bounded)
    given = draw_compositions(MONBTAW, DecorationSettings(compositions=[{"Mo": 1, "W": 1}]), 2, rng)
    assert given == [{"Mo": 0.5, "Nb": 0.0, "Ta": 0.0, "W": 0.5}] * 2
    assert site_counts({"Mo": 0.5, "Nb": 0.25, "Ta": 0.25, "W": 0.0}, 10) in ({"Mo": 5, "Nb": 3, "Ta": 2}, {"Mo": 5, "Nb": 2, "Ta": 3})
    with pytest.raises(ValidationError, match="keep"):
        DecorationSettings(draws=2, keep=3)


def test_decorations_follow_their_composition_and_are_reproducible():
    settings = GeneratorSettings(counts=NO_MOTIFS, genome=GenomeSettings(
        families=["stacking_fault"], stacking_fault_points=1, decoration=DecorationSettings(method="random", draws=4, keep=4)))
    out = generate_candidates(MONBTAW, settings, np.random.default_rng(3))
    for atoms in out:
        counts = atoms.info["generator"]["counts"]
        assert dict(zip(*np.unique(atoms.get_chemical_symbols(), return_counts=True))) == counts
    again = generate_candidates(MONBTAW, settings, np.random.default_rng(3))
    assert [config_hash(a) for a in again] == [config_hash(a) for a in out]


def test_maxvol_decoration_spans_more_volume_than_random_at_equal_count():
    def pick(method: str) -> list:
        g = GenomeSettings(families=["stacking_fault"], stacking_fault_points=1,
                           decoration=DecorationSettings(method=method, draws=30, keep=3))
        return generate_candidates(MONBTAW, GeneratorSettings(counts=NO_MOTIFS, genome=g), np.random.default_rng(2), fit=SMALL_BASIS)

    maxvol, random = pick("maxvol"), pick("random")
    assert len(maxvol) == len(random) == 6
    assert maxvol[0].info["generator"]["decoration"]["method"] == "maxvol"
    vol = {name: sum(active_set_log_volume(s, elements=MONBTAW, settings=SMALL_BASIS).values()) for name, s in
           (("maxvol", maxvol), ("random", random))}
    assert np.isfinite(vol["maxvol"]) and vol["maxvol"] > vol["random"]


def test_stratified_decoration_keeps_pure_to_quaternary_versions_of_each_topology():
    g = GenomeSettings(families=["surface"], surface_facets=["110"],
                       decoration=DecorationSettings(draws=16, keep=1, stratify=True))
    out = generate_candidates(MONBTAW, GeneratorSettings(counts=NO_MOTIFS, genome=g), np.random.default_rng(0), fit=SMALL_BASIS)
    assert [len(set(a.get_chemical_symbols())) for a in out] == [1, 2, 3, 4]
    assert [a.info["generator"]["decoration"]["draws"] for a in out] == [4] * 4


def test_maxvol_without_a_basis_is_a_clear_error():
    g = GenomeSettings(families=["surface"], surface_facets=["110"])
    with pytest.raises(ConfigError, match="train settings"):
        generate_candidates(MONBTAW, GeneratorSettings(counts=NO_MOTIFS, genome=g), np.random.default_rng(0))
