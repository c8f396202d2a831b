"""What stops an iteration before it spends DFT (issue 21 item 1): the policy functions of alloop.ensemble.routing
that the controller calls after scoring (unit tests; tests/test_campaign_member_failure.py runs the loop)."""

from __future__ import annotations

import numpy as np

from alloop.ensemble import EnsemblePredictions, MemberPredictions, resolve_ensemble
from alloop.ensemble.routing import dft_without_u, failing_members, route, spending_stop


def test_a_member_failing_on_a_whole_batch_or_above_the_share_stops_the_iteration():
    members = ["a", "b", "c"]
    # b failed on 1 of 20 (5 %): its configurations go to DFT with their reason; c failed to load on one batch
    errors = {"a": {}, "b": {3: "ValueError: unknown element"}, "c": {}}
    got = failing_members(errors, 20, members, 0.1, {"c": ("MemberError: checkpoint /x/model.pt\n  is not a model file.", 12)})
    assert [(f.member, f.whole_batch) for f in got] == [("c", True)]
    assert got[0].describe().startswith("member 'c' failed on a whole prediction batch")
    assert got[0].describe() == ("member 'c' failed on a whole prediction batch (12 of 20 configurations without its "
                                 "prediction): MemberError: checkpoint /x/model.pt is not a model file")
    # above the share: 3 of 20 (15 %) with its most frequent reason; at exactly the share it still passes
    errors["b"] = {1: "NaN forces", 2: "NaN forces", 7: "timeout"}
    got = failing_members(errors, 20, members, 0.1)
    assert [f.member for f in got] == ["b"] and got[0].n_failed == 3 and "NaN forces" in got[0].error
    assert failing_members(errors, 30, members, 0.1) == []
    # only the watched members count (a member outside U and the labels is not the iteration's concern)
    assert failing_members(errors, 20, ["a", "c"], 0.1) == []
    assert failing_members({}, 0, members, 0.1) == []


def _routing(n_bad: int, n: int = 10, force_dft=None):
    spec = resolve_ensemble({"name": "e", "members": [{"name": "a", "kind": "chgnet", "model": "0.3.0"},
                                                      {"name": "b", "kind": "chgnet", "model": "0.2.0"}]}, check_files=False)
    f = [np.zeros((2, 3)) for _ in range(n)]
    per = {m: MemberPredictions(m, np.full(n, -20.0), [x.copy() for x in f]) for m in ("a", "b")}
    per["b"].forces[0][:] = 5.0  # configuration 0: the members disagree, U >= U_c: DFT for its U
    for i in range(1, 1 + n_bad):  # these: b failed, no U
        per["b"].energies[i] = np.nan
        per["b"].forces[i][:] = np.nan
        per["b"].errors[i] = "RuntimeError: CUDA out of memory"
    preds = EnsemblePredictions.stack(spec, per, np.full(n, 2))
    return route(preds, 1.0, 1, "a", "a", force_dft=force_dft)


def test_the_share_sent_to_dft_for_want_of_u_is_capped():
    r = _routing(n_bad=1)
    assert dft_without_u(r, 1.0, 1).tolist() == [False, True] + [False] * 8  # not the one with U >= U_c
    assert spending_stop(r, 1.0, 1, 0.1) is None  # 1 of 10: at the cap, still sent to DFT with its reason
    assert r.reasons[1].startswith("U not computable (b: RuntimeError: CUDA out of memory)")
    r = _routing(n_bad=2)
    why = spending_stop(r, 1.0, 1, 0.1)
    assert why is not None and why.startswith("2 of 10 configurations (20%) would go to DFT for want of U")
    assert "guard.max_dft_share_without_u = 10%" in why and "CUDA out of memory" in why
    assert spending_stop(r, 1.0, 1, 0.25) is None
    # energy-reference calibration cells go to DFT whatever their U: never counted
    r = _routing(n_bad=0, force_dft=np.array([False] + [True] * 5 + [False] * 4))
    assert not dft_without_u(r, 1.0, 1).any() and spending_stop(r, 1.0, 1, 0.1) is None


def test_dimers_and_trimers_go_to_dft_by_kind_whatever_their_u():
    from alloop.ensemble.routing import dft_by_kind

    kinds = ["dimer", "strained_bulk", "trimer", "calibration", "vacancy"]
    why = dft_by_kind(kinds, ["dimer", "trimer"], "calibration")
    assert [w is not None for w in why] == [True, False, True, True, False]
    assert "uncertainty.dft_kinds" in why[0] and why[3].startswith("energy-reference calibration")
    # every member agrees on them (U = 0), yet they go to DFT with their reason, and they are no spending of U's
    r = _routing(n_bad=0, n=5, force_dft=why)
    assert r.to_umlip.tolist() == [False, True, False, False, True]
    assert r.reasons[2] == why[2] and not dft_without_u(r, 1.0, 1).any()
    assert dft_by_kind(kinds, [], "calibration")[0] is None  # [] routes dimers by U


def test_cells_that_u_sends_to_dft_above_dft_max_atoms_are_left_unlabelled_with_their_reason():
    spec = resolve_ensemble({"name": "e", "members": [{"name": "a", "kind": "chgnet", "model": "0.3.0"},
                                                      {"name": "b", "kind": "chgnet", "model": "0.2.0"}]}, check_files=False)
    n_atoms = np.array([2, 54, 54, 16])
    per = {m: MemberPredictions(m, np.full(4, -20.0), [np.zeros((n, 3)) for n in n_atoms]) for m in ("a", "b")}
    for i in (1, 2, 3):  # high U everywhere but configuration 0
        per["b"].forces[i][0] = 5.0
    preds = EnsemblePredictions.stack(spec, per, n_atoms)
    forced = [None, None, "a dimer: by kind", None]
    r = route(preds, 1.0, 1, "a", "a", force_dft=forced, dft_max_atoms=16)
    assert r.to_umlip.tolist() == [True, False, False, False]
    # the 54-atom cell sent by U is skipped; the one sent by kind and the 16-atom one still go to DFT
    assert [r.skipped(k) for k in range(4)] == [False, True, False, False]
    assert r.reasons[1] == (f"U = {r.u[1][1]:.2f} eV/Å needs DFT, but its 54 atoms exceed selection.dft_max_atoms = 16: "
                            "not labelled")
    assert not any(route(preds, 1.0, 1, "a", "a", force_dft=forced).skipped(k) for k in range(4))  # no cap by default


def test_a_dft_budget_in_atoms_takes_the_highest_u_first_and_leaves_the_rest_unlabelled_with_their_reason():
    spec = resolve_ensemble({"name": "e", "members": [{"name": "a", "kind": "chgnet", "model": "0.3.0"},
                                                      {"name": "b", "kind": "chgnet", "model": "0.2.0"}]}, check_files=False)
    n_atoms = np.array([2, 16, 16, 8, 8, 4])
    per = {m: MemberPredictions(m, np.full(6, -20.0), [np.zeros((n, 3)) for n in n_atoms]) for m in ("a", "b")}
    for i, f in ((1, 6.0), (2, 3.0), (3, 5.0), (4, 2.0)):  # U in that order: 1 > 3 > 2 > 4; 5 is low U
        per["b"].forces[i][0] = f
    preds = EnsemblePredictions.stack(spec, per, n_atoms)
    forced = ["a dimer: by kind", None, None, None, None, None]
    r = route(preds, 1.0, 1, "a", "a", force_dft=forced, dft_budget_atoms=30)
    # 30 atoms: the dimer's 2 first, then U's order: 16 (U highest) and 8 fit (26); the other 16 does not, the last 8
    # does not either (4 left); the low-U cell is the uMLIP's and costs nothing
    assert r.to_umlip.tolist() == [False, False, False, False, False, True]
    assert [r.skipped(k) for k in range(6)] == [False, False, True, False, True, False]
    assert r.reasons[2] == (f"U = {r.u[1][2]:.2f} eV/Å needs DFT, but its 16 atoms do not fit in what is left of "
                            "selection.dft_budget_atoms = 30 this iteration (higher U first): not labelled")
    spent = sum(int(n_atoms[k]) for k in range(6) if not r.to_umlip[k] and not r.skipped(k))
    assert spent == 26 <= 30
    assert not any(route(preds, 1.0, 1, "a", "a", force_dft=forced).skipped(k) for k in range(6))  # no cap by default
