"""Energy-reference calibration cells: each element's bulk ground state (strained a little), and for alloys
random compositions over the simplex; they are labelled by DFT whatever their U."""

from __future__ import annotations

import numpy as np

from alloop.ensemble import EnsemblePredictions, MemberPredictions, resolve_ensemble
from alloop.ensemble.routing import route
from alloop.generate import GeneratorSettings
from alloop.generate.calibration import KIND, calibration_structures


def test_one_bulk_cell_per_element_and_strain_plus_alloy_draws():
    cells = calibration_structures(["Mo", "Nb", "Ta", "W"], GeneratorSettings(), [-0.01, 0.0, 0.01], 3, np.random.default_rng(0))
    pure = [a for a in cells if "element" in a.info["generator"]]
    alloys = [a for a in cells if "element" not in a.info["generator"]]
    assert len(pure) == 12 and len(alloys) == 3
    assert all(a.info["kind"] == KIND and a.pbc.all() for a in cells)
    w = [a for a in pure if a.info["generator"]["element"] == "W"]
    assert [round(a.info["generator"]["strain"], 3) for a in w] == [-0.01, 0.0, 0.01]
    assert len(w[1]) == 1 and np.isclose(w[1].cell.volume, 3.16**3 / 2, rtol=1e-2)
    assert all(len(set(a.get_chemical_symbols())) > 1 for a in alloys)
    assert calibration_structures(["W"], GeneratorSettings(), [0.0], 3, np.random.default_rng(0))[0].get_chemical_formula() == "W"


def test_calibration_cells_go_to_dft_whatever_their_u():
    spec = resolve_ensemble({"name": "e", "members": [{"name": "a", "kind": "chgnet", "model": "0.3.0"},
                                                      {"name": "b", "kind": "chgnet", "model": "0.2.0"}]}, check_files=False)
    f = [np.zeros((2, 3)), np.zeros((1, 3))]
    per = {m: MemberPredictions(m, np.array([-20.0, -13.0]), [x.copy() for x in f]) for m in ("a", "b")}
    preds = EnsemblePredictions.stack(spec, per, np.array([2, 1]))
    decision = route(preds, 1.0, 1, "a", "a", force_dft=np.array([False, True]))
    assert decision.to_umlip.tolist() == [True, False]
    assert decision.reasons[1].startswith("energy-reference calibration")
