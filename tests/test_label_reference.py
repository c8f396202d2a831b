"""Per-element energy offsets between label sources (e.g. GPAW or a uMLIP onto the VASP-PBE scale)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from ase.build import bulk

from alloop.errors import FitError
from alloop.label.reference import apply_offsets, composition_matrix, fit_element_offsets


def random_compositions(rng: np.random.Generator, elements: list[str], n: int) -> list[dict[str, int]]:
    return [{el: int(c) for el, c in zip(elements, rng.integers(0, 20, size=len(elements))) if c} or {elements[0]: 1}
            for _ in range(n)]


def test_known_offsets_are_recovered() -> None:
    rng = np.random.default_rng(0)
    elements = ["Mo", "Nb", "Ta", "W"]
    truth = {"Mo": -0.73, "Nb": 1.25, "Ta": -3.1, "W": 8.4}  # eV/atom, GPAW-vs-VASP sized
    comps = random_compositions(rng, elements, 40)
    e_source = rng.normal(-10, 2, size=40) * np.array([sum(c.values()) for c in comps])
    shift = np.array([sum(n * truth[el] for el, n in c.items()) for c in comps])
    e_target = e_source + shift + rng.normal(0, 1e-4, size=40)

    offsets = fit_element_offsets(comps, e_source, e_target)
    assert offsets == pytest.approx(truth, abs=1e-3)
    assert apply_offsets(comps, e_source, offsets) == pytest.approx(e_target, abs=2e-3)
    assert apply_offsets(comps[0], e_source[0], offsets) == pytest.approx(e_target[0], abs=2e-3)

    # The same fit from a count matrix with its element order, or from Atoms.
    counts, order = composition_matrix(comps, elements)
    assert fit_element_offsets(counts, e_source, e_target, elements=order) == pytest.approx(offsets)
    w2 = bulk("W", "bcc", a=3.17, cubic=True)
    assert apply_offsets(w2, -20.0, offsets) == pytest.approx(-20.0 + 2 * offsets["W"])


def test_underdetermined_fit_falls_back_to_one_shared_offset(caplog) -> None:
    comps = [{"W": 1, "Mo": 1}, {"W": 2, "Mo": 2}, {"W": 8, "Mo": 8}]  # one composition ratio, two elements
    n = np.array([2, 4, 16])
    e_source = -10.0 * n
    e_target = e_source + 0.5 * n
    with caplog.at_level(logging.WARNING):
        offsets = fit_element_offsets(comps, e_source, e_target)
    assert offsets == pytest.approx({"Mo": 0.5, "W": 0.5})
    assert "not identifiable" in caplog.text
    with pytest.raises(FitError, match="not identifiable"):
        fit_element_offsets(comps, e_source, e_target, fallback="raise")


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(FitError, match="no configuration"):
        fit_element_offsets([], [], [])
    with pytest.raises(FitError, match="lengths differ"):
        fit_element_offsets([{"W": 2}], [1.0, 2.0], [1.0])
    with pytest.raises(FitError, match="no energy offset for element Nb"):
        apply_offsets({"Nb": 2}, -20.0, {"W": 0.1})


def test_w_dft_vs_umlip_reference(w_npz) -> None:
    """The paper's W set: VASP-PBE DFT and eqV2-31M-OAM (trained on VASP-PBE) share a reference to
    about a meV/atom; a GPAW-like constant shift of the DFT energies is recovered exactly on top."""
    n = w_npz["n_atoms"][:1026]  # the "general" defects, where the uMLIP is reliable
    names = list(w_npz["model_names"])
    e_umlip = w_npz["energy_per_atom_models"][names.index("2-eqV2-31")][:1026] * n  # per atom → total
    e_dft = w_npz["energy_dft_total"][:1026]
    comps = [{"W": int(k)} for k in n]

    offsets = fit_element_offsets(comps, e_dft, e_umlip)
    assert abs(offsets["W"]) < 0.01
    aligned = apply_offsets(comps, e_dft, offsets)
    assert np.sqrt(np.mean(((aligned - e_umlip) / n) ** 2)) < 0.01  # eV/atom

    shifted = fit_element_offsets(comps, e_dft - 8.5 * n, e_umlip)
    assert shifted["W"] == pytest.approx(8.5 + offsets["W"], abs=1e-9)


# ---------------------------------------------------------------------------------------------------
# the campaign's energy reference: fitted only where both sources are trustworthy


def _w_cells(n: int, rng: np.random.Generator) -> list:
    return [bulk("W", "bcc", a=3.17, cubic=True).repeat((1, 1, 1 + int(k))) for k in rng.integers(0, 3, size=n)]


def test_offsets_come_from_low_u_configurations_only() -> None:
    from alloop.label.reference import EnergyReferenceSettings, fit_energy_reference

    rng = np.random.default_rng(1)
    cells = _w_cells(12, rng)
    n = np.array([len(a) for a in cells])
    e_dft = rng.normal(-13.0, 0.2, size=12) * n
    e_member = e_dft + 1.39 * n  # the uMLIP sits 1.39 eV/atom above DFT where it is trustworthy
    u = np.full(12, 0.2)
    u[8:] = 3.0  # high-U configurations: the uMLIP energy is off by eV/atom there
    e_member[8:] += rng.normal(0, 2.0, size=4) * n[8:]
    ref = fit_energy_reference(EnergyReferenceSettings(), "7net-0", cells, e_dft, e_member, u, 1.0, ["W"])
    assert ref.method == "fit" and ref.n_pairs == 8 and ref.frozen
    assert ref.offsets["W"] == pytest.approx(1.39, abs=1e-9)
    assert ref.residual_rms == pytest.approx(0.0, abs=1e-9)
    assert "7net-0" in ref.energy_scale


def test_one_bad_low_u_configuration_barely_moves_the_offsets() -> None:
    from alloop.label.reference import EnergyReferenceSettings, fit_energy_reference

    rng = np.random.default_rng(2)
    cells = _w_cells(10, rng)
    n = np.array([len(a) for a in cells])
    e_dft = rng.normal(-13.0, 0.2, size=10) * n
    e_member = e_dft + (-1.15 + rng.normal(0, 0.005, size=10)) * n
    e_member[3] += 2.0 * n[3]  # one low-U configuration whose uMLIP energy is 2 eV/atom off
    ref = fit_energy_reference(EnergyReferenceSettings(), "m", cells, e_dft, e_member, np.full(10, 0.1), 1.0, ["W"])
    plain = fit_element_offsets(cells, e_dft, e_member)
    assert abs(plain["W"] + 1.15) > 0.15  # least squares is dragged by the outlier
    assert ref.offsets["W"] == pytest.approx(-1.15, abs=0.01)
    assert ref.n_outliers == 1


def test_no_trustworthy_pair_is_an_error_and_none_mixes_as_labelled() -> None:
    from alloop.label.reference import EnergyReference, EnergyReferenceSettings, fit_energy_reference

    cells = _w_cells(3, np.random.default_rng(3))
    e = np.array([-26.0, -26.1, -39.0])
    with pytest.raises(FitError, match="U < U_c = 1 eV/Å"):
        fit_energy_reference(EnergyReferenceSettings(), "m", cells, e, e + 1, [2.0, 5.0, None], 1.0, ["W"])
    none = fit_energy_reference(EnergyReferenceSettings(method="none"), "eqV2-31M-OAM", cells, e, e + 1, [2.0, 5.0, None], 1.0, ["W"])
    assert none.offsets == {} and none.method == "none" and none.frozen
    assert EnergyReference.from_json(none.to_json()) == none
