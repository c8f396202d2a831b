"""Candidate generation: random motifs for the first training set and MD starting cells."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from alloop.errors import ConfigError
from alloop.generate import GeneratorSettings, KindCounts, generate_candidates, starting_structures
from alloop.structures import config_hash, validate_atoms


def _min_distance(atoms) -> float:
    d = atoms.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def _only(kind: str, n: int = 1) -> dict[str, int]:
    return {k: (n if k == kind else 0) for k in KindCounts.model_fields}


def test_default_settings_give_every_kind_small_valid_periodic_cells():
    settings = GeneratorSettings()
    structures = generate_candidates(["W"], settings, np.random.default_rng(0))

    kinds = [a.info["kind"] for a in structures]
    for kind, count in settings.counts.model_dump().items():
        assert kinds.count(kind) == count
    for atoms in structures:
        assert len(atoms) <= settings.max_atoms
        assert atoms.pbc.all()
        validate_atoms(atoms, settings.min_distance)
        assert isinstance(atoms.info["generator"], dict)
        assert set(atoms.get_chemical_symbols()) == {"W"}


def test_same_seed_same_structures_other_seed_other_structures():
    settings = GeneratorSettings()
    a = [config_hash(x) for x in generate_candidates(["W"], settings, np.random.default_rng(7))]
    b = [config_hash(x) for x in generate_candidates(["W"], settings, np.random.default_rng(7))]
    c = [config_hash(x) for x in generate_candidates(["W"], settings, np.random.default_rng(8))]
    assert a == b
    assert a != c
    assert len(set(a)) == len(a), "repeated motifs must differ"


def test_lattice_constant_defaults_to_ase_reference_and_explains_missing_ones():
    (bulk,) = generate_candidates(
        ["W"], GeneratorSettings(counts=KindCounts(**_only("rattled_bulk"))), np.random.default_rng(0)
    )
    assert bulk.info["generator"]["a"] == pytest.approx(3.16)

    with pytest.raises(ConfigError, match="Cu has no bcc reference"):
        generate_candidates(["Cu"], GeneratorSettings(), np.random.default_rng(0))
    fcc = generate_candidates(["Cu"], GeneratorSettings(lattice="fcc"), np.random.default_rng(0))
    assert fcc and all(len(a) <= 16 for a in fcc)
    given = generate_candidates(["Cu"], GeneratorSettings(lattice_constant=2.9), np.random.default_rng(0))
    assert given[0].info["generator"]["a"] == 2.9


def test_defects_change_the_atom_count_and_stay_within_max_atoms():
    rng = np.random.default_rng(1)
    vac = generate_candidates(["W"], GeneratorSettings(counts=KindCounts(**_only("vacancy"))), rng)[0]
    inter = generate_candidates(["W"], GeneratorSettings(counts=KindCounts(**_only("interstitial", 5))), rng)
    assert len(vac) == 15  # 2x2x2 bcc cell minus one
    for atoms in inter:
        reps = atoms.info["generator"]["supercell"]
        assert len(atoms) == 2 * int(np.prod(reps)) + 1 <= 16
        assert _min_distance(atoms) > 1.0


def test_surfaces_are_periodic_slabs_with_vacuum_beyond_the_cutoff():
    settings = GeneratorSettings(counts=KindCounts(**_only("surface", 2)))
    slabs = generate_candidates(["W"], settings, np.random.default_rng(2))
    assert sorted(a.info["generator"]["facet"] for a in slabs) == ["100", "110"]
    for slab in slabs:
        assert slab.pbc.all()
        z = slab.positions[:, 2]
        gap = slab.cell[2, 2] - (z.max() - z.min())
        assert gap > settings.cutoff


def test_dimers_span_the_distance_grid_in_a_box_wider_than_the_cutoff():
    settings = GeneratorSettings(counts=KindCounts(**_only("dimer", 7)))
    dimers = generate_candidates(["W"], settings, np.random.default_rng(3))
    d = [a.get_distance(0, 1) for a in dimers]
    assert d == pytest.approx(np.linspace(1.5, 4.5, 7))
    for atoms, dist in zip(dimers, d, strict=True):
        assert atoms.cell.lengths().min() - dist > settings.cutoff  # image farther than the cutoff


def test_compressed_pairs_land_in_the_short_range_window():
    settings = GeneratorSettings(counts=KindCounts(**_only("compressed", 10)))
    for atoms in generate_candidates(["W"], settings, np.random.default_rng(4)):
        assert 1.2 - 1e-9 <= _min_distance(atoms) <= 2.0 + 1e-9
        i, j = atoms.info["generator"]["pair"]
        assert atoms.get_distance(i, j, mic=True) == pytest.approx(atoms.info["generator"]["distance"])


def test_alloys_get_random_decoration_and_all_dimer_pairs():
    settings = GeneratorSettings(counts=KindCounts(**(_only("rattled_bulk", 3) | {"dimer": 6})))
    out = generate_candidates(["Mo", "W"], settings, np.random.default_rng(5))
    bulk = [a for a in out if a.info["kind"] == "rattled_bulk"]
    assert all(set(a.get_chemical_symbols()) == {"Mo", "W"} for a in bulk)
    pairs = {tuple(sorted(a.get_chemical_symbols())) for a in out if a.info["kind"] == "dimer"}
    assert pairs == {("Mo", "Mo"), ("Mo", "W"), ("W", "W")}
    assert bulk[0].info["generator"]["a"] == pytest.approx((3.15 + 3.16) / 2)


def test_starting_structures_for_exploration():
    settings = GeneratorSettings()
    starts = starting_structures(["W"], settings, np.random.default_rng(0))
    assert [a.info["kind"] for a in starts] == ["bulk", "vacancy", "interstitial", "surface", "surface"]
    assert starts[2].info["generator"]["interstitial"] == "dumbbell_111"
    for atoms in starts:
        assert atoms.pbc.all() and len(atoms) <= settings.max_atoms
        validate_atoms(atoms, settings.min_distance)


@pytest.mark.parametrize(
    "bad",
    [
        {"vacuum": 4.0},  # not wider than the 5 Å cutoff
        {"compressed_distances": (0.5, 2.0)},  # below min_distance
        {"rattle_stdev": (0.2, 0.1)},
        {"max_atoms": 4},
        {"typo_field": 1},
    ],
)
def test_settings_reject_unsafe_or_unknown_values(bad):
    with pytest.raises(ValidationError):
        GeneratorSettings(**bad)
