"""What `train.n_functions` means, measured on the bases pyace builds: per element, not in total."""

from __future__ import annotations

import pytest

from alloop.train import FitSettings, render_input
from alloop.train.basis import basis_size


def test_n_functions_is_per_element_pacemakers_number_of_functions_per_element():
    s = FitSettings(n_functions=10, nradmax_by_orders=[6, 2], lmax_by_orders=[0, 2])
    assert render_input(s, ["Mo", "W"], "t.pckl.gzip", None)["potential"]["functions"]["number_of_functions_per_element"] == 10
    one, two = basis_size(s, ["W"]), basis_size(s, ["Mo", "W"])
    assert one.functions == {"W": 10} and one.total == 10
    assert two.functions == {"Mo": 10, "W": 10} and two.total == 20


def test_paper_w_preset_is_72_functions_and_801_parameters():
    size = basis_size(FitSettings(basis="paper-W"), ["W"])
    assert (size.total, size.parameters) == (72, 801)  # 72 x 8 densities + 225 radial coefficients


@pytest.mark.slow  # pyace needs ~10 s to enumerate the 4-element pool
def test_paper_monbtaw_preset_asks_914_per_element_and_comes_within_a_percent_of_the_paper():
    s = FitSettings(basis="paper-MoNbTaW")
    assert s.n_functions == 914 and 4 * s.n_functions == 3656
    size = basis_size(s, ["Mo", "Nb", "Ta", "W"])
    assert size.total == 3648 and size.parameters == 30732  # paper: 3656 and 30,868
    assert abs(size.parameters - 30868) / 30868 < 0.01


def test_explicit_fields_override_the_preset():
    s = FitSettings(basis="paper-MoNbTaW", n_functions=20)
    assert s.n_functions == 20 and s.nradmax_by_orders == [15, 3, 3, 1]
    with pytest.raises(ValueError):
        FitSettings(basis="paper-Cu")
