"""ACE fitting with pacemaker, extrapolation grade γ and MaxVol selection (alloop.train).

Fast tests use the paper's published 72-function W potential (shared data) with an active set built
here, and a stand-in `pacemaker` script for the workflow around the fit; the tests marked slow run the
real pacemaker (TensorFlow start-up alone takes ~30 s on two CPUs)."""

from __future__ import annotations

import json
import os
import stat
import sys

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from pydantic import ValidationError

from alloop.errors import FitError, MissingFileError, UnphysicalStructureError
from alloop.train import (
    FitSettings,
    committee_spread,
    extrapolation_grades,
    fit_ace,
    load_ace,
    load_fit,
    max_gamma,
    render_input,
    select_maxvol,
)
from alloop.train import fit as fit_module
from alloop.train.evaluate import errors_against

PAPER_POTENTIAL = "uq_umlip_W/ace_potentials/0_ensemble_potential_0.yaml"
BULK_54 = [6, 12, 19, 20, 21, 33]  # 54-atom "general" W configurations of the shared npz
SMALL = [1, 3, 10, 18, 24, 26, 45, 56, 80, 86, 90, 96]  # 2-12 atoms


def w_atoms(npz, i: int) -> Atoms:
    s = slice(int(npz["offsets"][i]), int(npz["offsets"][i + 1]))
    return Atoms(numbers=npz["numbers"][s], positions=npz["positions"][s], cell=npz["cells"][i], pbc=npz["pbc"][i])


def w_frame(npz, indices: list[int]) -> pd.DataFrame:
    """Training data as the controller hands it over (energies here need no alignment: one DFT source)."""
    e = npz["energy_dft_total"][indices]
    forces = [npz["forces_dft"][npz["offsets"][i] : npz["offsets"][i + 1]] for i in indices]
    return pd.DataFrame({"ase_atoms": [w_atoms(npz, i) for i in indices], "energy": e, "energy_corrected": e, "forces": forces})


def distorted(npz) -> Atoms:
    a = w_atoms(npz, BULK_54[0])
    a.set_cell(a.cell * 0.8, scale_atoms=True)  # 20 % compression, far outside the training data
    a.rattle(0.25, seed=3)
    return a


# ---------------------------------------------------------------------------------------------- settings
def test_the_paper_recipe_is_the_papers_methods():
    s = FitSettings(recipe="paper")
    assert (s.n_functions, s.cutoff, s.kappa, s.optimizer, s.maxiter) == (72, 5.0, 0.01, "BFGS", 2000)
    assert not (s.energy_weighting or s.repulsion or s.regularization) and s.reference_energy == "none"
    assert s.radial_basis == "SBessel" and s.evaluator == "tensorpot" and s.committee == 1
    # φ, φ^1/2, φ^1/8, φ^1/4, φ^3/8, φ^3/4, φ^7/8, φ^2
    assert s.fs_parameters[1::2] == [1, 0.5, 0.125, 0.25, 0.375, 0.75, 0.875, 2] and s.ndensity == 8

    config = render_input(s, ["W"], "../train.pckl.gzip", "../test.pckl.gzip", member=2)
    assert config["seed"] == s.seed + 2
    emb = config["potential"]["embeddings"]["ALL"]
    assert emb["npot"] == "FinnisSinclairShiftedScaled" and emb["ndensity"] == 8
    assert config["potential"]["bonds"]["ALL"]["radbase"] == "SBessel"
    assert config["potential"]["bonds"]["ALL"]["rcut"] == 5.0
    assert config["fit"] == {"loss": {"kappa": 0.01}, "optimizer": "BFGS", "maxiter": 2000}
    assert config["backend"]["evaluator"] == "tensorpot"
    assert config["data"] == {"filename": "../train.pckl.gzip", "test_filename": "../test.pckl.gzip"}


def test_the_default_recipe_carries_pacemakers_safeguards():
    s = FitSettings(maxiter=100)
    assert s.recipe == "safeguarded" and s.kappa == 0.3 and FitSettings(recipe="paper", kappa=0.1).kappa == 0.1
    config = render_input(s, ["W"], "train.pckl.gzip", None, r_in=1.62, reference_energy={"W": -12.9})
    fit = config["fit"]
    assert fit["loss"] == {"kappa": 0.3, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8, "w0_rad": 1e-8, "w1_rad": 1e-8, "w2_rad": 1e-8}
    assert fit["weighting"]["type"] == "EnergyBasedWeightingPolicy" and (fit["weighting"]["DElow"], fit["weighting"]["wlow"]) == (1.0, 0.75)
    bonds = config["potential"]["bonds"]["ALL"]
    assert (bonds["inner_cutoff_type"], bonds["r_in"]) == ("zbl", 1.62)
    assert config["data"]["reference_energy"] == {"W": -12.9}
    warm = render_input(s.model_copy(update={"warm_maxiter": 30}), ["W"], "train.pckl.gzip", None, initial_potential="/prev/p.yaml")
    assert warm["potential"] == "/prev/p.yaml" and warm["fit"]["maxiter"] == 30


def test_default_basis_is_the_published_w_basis(shared_data):
    """nradmax [15,3,2,1] / lmax [0,4,2,0] give exactly the 72 functions of the paper's W potential."""
    from pyace import BBasisConfiguration

    from alloop.train import untrained_model

    def specs(bconf):
        return {(tuple(f.ns), tuple(f.ls), tuple(f.LS)) for b in bconf.funcspecs_blocks for f in b.funcspecs}

    ours = untrained_model(FitSettings(), ("W",)).basis.to_BBasisConfiguration()
    assert specs(ours) == specs(BBasisConfiguration(str(shared_data / PAPER_POTENTIAL)))


def test_extra_is_merged_into_the_pacemaker_input_and_unknown_settings_are_refused():
    s = FitSettings(recipe="paper", extra={"fit": {"loss": {"L2_coeffs": 1e-8}, "fit_cycles": 2}}, test_fraction=0)
    config = render_input(s, ["W", "Mo"], "train.pckl.gzip", None)
    assert config["fit"]["loss"] == {"kappa": 0.01, "L2_coeffs": 1e-8} and config["fit"]["fit_cycles"] == 2
    assert config["potential"]["elements"] == ["Mo", "W"]
    assert "test_filename" not in config["data"]
    with pytest.raises(ValidationError):
        FitSettings(n_function=10)
    with pytest.raises(ValidationError):
        FitSettings(fs_parameters=[1, 1, 1])


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda f: f.iloc[:0], "0 structure"),
        (lambda f: f.iloc[:1], "at least 2"),
        (lambda f: f.drop(columns="energy_corrected"), "lacks column"),
        (lambda f: f.assign(forces=[np.full((len(a), 3), np.nan) for a in f.ase_atoms]), "forces must be"),
    ],
)
def test_unusable_training_data_is_refused_before_fitting(w_npz, tmp_path, make, reason):
    with pytest.raises(FitError, match=reason):
        fit_ace(make(w_frame(w_npz, SMALL)), FitSettings(), tmp_path / "fit", ["W"])
    assert not (tmp_path / "fit" / "fit_done.json").exists()


def test_mixed_periodicity_and_foreign_elements_are_refused(w_npz, tmp_path):
    frame = w_frame(w_npz, SMALL)
    frame.ase_atoms[2].pbc = [True, True, False]
    with pytest.raises(FitError, match="structure 2: mixed periodicity"):
        fit_ace(frame, FitSettings(), tmp_path, ["W"])
    with pytest.raises(FitError, match="not among the fit's elements"):
        fit_ace(w_frame(w_npz, SMALL), FitSettings(), tmp_path, ["Mo"])


def test_too_few_atoms_for_the_active_set_is_refused(w_npz, tmp_path):
    # 12 small cells hold 60 W atoms: fewer than the 72 basis functions MaxVol needs
    with pytest.raises(FitError, match="too few training atoms.*W: \\d+ atoms for 72 functions"):
        fit_ace(w_frame(w_npz, SMALL), FitSettings(test_fraction=0), tmp_path, ["W"])


# ---------------------------------------------------------------------------------------------- the fit workflow
FAKE_PACEMAKER = """\
#!{python}
# Stand-in for pacemaker: copies a real potential and writes the files alloop reads, or fails on demand.
import os, shutil, sys
import yaml
mode = os.environ.get("FAKE_MODE", "ok")
assert sys.argv[1] == "--no-predict", sys.argv  # alloop computes the errors itself (alloop.train.evaluate)
yaml.safe_load(open(sys.argv[-1]))  # the input pacemaker reads is YAML
if mode == "sigkill":  # killed (as by the OOM killer) while FAKE_KILLS, a file outside the fit, counts down
    left = int(open(os.environ["FAKE_KILLS"]).read())
    if left > 0:
        open(os.environ["FAKE_KILLS"], "w").write(str(left - 1))
        open("log.txt", "w").write("partial log of a killed run\\n")
        os.kill(os.getpid(), 9)
with open("log.txt", "w") as log:
    log.write("Total number of functions: 72 / number of parameters: 801\\n")
    if mode == "crash":
        print("Traceback: something broke", flush=True)
        sys.exit(3)
    loss = "nan" if mode == "nan" else "1.0e-02"
    log.write(f"I - Iteration   #7    (9 evals):   Loss: {{loss}} | RMSE Energy(low): 1 (1) meV/at\\n")
    status = {{"early": "2, message=Desired error not necessarily achieved due to precision loss."}}.get(
        mode, "1, message=Maximum number of iterations has been exceeded.")
    log.write(f"I - Optimization result(success=False, status={{status}}, nfev=9, njev=9)\\n")
if mode == "nopot":
    sys.exit(0)
if mode == "corrupt":
    open("output_potential.yaml", "w").write("species: [this is not an ACE potential\\n")
    sys.exit(0)
shutil.copy(os.environ["FAKE_POTENTIAL"], "output_potential.yaml")
"""


@pytest.fixture
def fake_pacemaker(tmp_path, monkeypatch, shared_data):
    script = tmp_path / "bin" / "pacemaker"
    script.parent.mkdir()
    script.write_text(FAKE_PACEMAKER.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    real = fit_module._executable
    monkeypatch.setattr(fit_module, "_executable", lambda name: str(script) if name == "pacemaker" else real(name))
    monkeypatch.setenv("FAKE_POTENTIAL", str(shared_data / PAPER_POTENTIAL))
    return monkeypatch


def test_fit_writes_committee_active_set_and_metrics_then_reuses_them(w_npz, tmp_path, fake_pacemaker):
    workdir = tmp_path / "fit"
    frame = w_frame(w_npz, BULK_54 + SMALL)
    settings = FitSettings(committee=2, test_fraction=0.25)
    result = fit_ace(frame, settings, workdir, ["W"])

    assert result.potential_yaml == workdir / "member_0" / "output_potential.yaml"
    assert result.committee == (result.potential_yaml, workdir / "member_1" / "output_potential.yaml")
    assert result.active_set.is_file() and not result.reused
    m = result.metrics
    assert (m["n_structures"], m["n_train"], m["n_test"]) == (18, 14, 4)
    # the errors are the potential's (here the paper's ACE, fitted on these cells) on each split, as `alloop evaluate`
    # computes them
    for split in ("train", "test"):
        cells = pd.read_pickle(workdir / f"{split}.pckl.gzip", compression="gzip")
        want, _ = errors_against(result.potential_yaml, list(cells["ase_atoms"]), cells["energy_corrected"], list(cells["forces"]))
        assert (m[f"energy_rmse_{split}"], m[f"force_rmse_{split}"]) == (round(want["energy_rmse"], 4), round(want["force_rmse"], 5))
    assert m["energy_rmse_train"] < 20 and m["force_rmse_train"] < 0.3
    assert m["n_functions"] == 72 and m["n_iterations"] == 7
    members = [json.loads(json.dumps(p)) for p in result.member_metrics]
    assert len(members) == 2
    # each member has its own seed; the split is shared
    seeds = [int(l.split(":")[1]) for k in (0, 1) for l in (workdir / f"member_{k}" / "input.yaml").read_text().splitlines() if l.startswith("seed:")]
    assert seeds == [settings.seed, settings.seed + 1]

    again = fit_ace(frame, settings, workdir, ["W"])
    assert again.reused and again.potential_yaml == result.potential_yaml and again.metrics == result.metrics
    assert load_fit(workdir) == again

    # other data in the same workdir: refitted, not silently reused
    other = fit_ace(w_frame(w_npz, BULK_54 + SMALL[:-1]), settings, workdir, ["W"])
    assert not other.reused and other.n_structures == 17


def test_a_fit_starts_from_the_previous_potential_of_the_same_basis_in_its_reference_frame(w_npz, tmp_path, fake_pacemaker):
    settings = FitSettings(test_fraction=0, warm_maxiter=40)
    first = fit_ace(w_frame(w_npz, BULK_54 + SMALL), settings, tmp_path / "iter_0", ["W"], isolated_energies={"W": -2.2})
    assert not first.metrics["warm_start"] and first.reference_energy == {"W": -2.2}
    cfg = lambda fit: yaml_load((fit.workdir / "member_0" / "input.yaml").read_text())  # noqa: E731
    assert cfg(first)["data"]["reference_energy"] == first.reference_energy and isinstance(cfg(first)["potential"], dict)

    frame = w_frame(w_npz, BULK_54 + SMALL + [100, 101])
    second = fit_ace(frame, settings, tmp_path / "iter_1", ["W"], warm_from=first.workdir, isolated_energies={"W": -9.9})
    assert second.metrics["warm_start"] and second.reference_energy == first.reference_energy
    assert cfg(second)["potential"] == str(first.potential_yaml) and cfg(second)["fit"]["maxiter"] == 40

    cold = fit_ace(frame, settings.model_copy(update={"n_functions": 20}), tmp_path / "other", ["W"], warm_from=first.workdir)
    assert not cold.metrics["warm_start"] and isinstance(cfg(cold)["potential"], dict)  # another basis: from scratch
    assert cold.reference_energy is None  # and no isolated atoms given: absolute energies
    off = fit_ace(frame, settings.model_copy(update={"warm_start": False}), tmp_path / "off", ["W"], warm_from=first.workdir)
    assert not off.metrics["warm_start"]


def test_structures_above_the_bounds_are_left_out_and_counted_short_range_ones_weighted_down(w_npz, tmp_path, fake_pacemaker):
    frame = w_frame(w_npz, BULK_54 + SMALL)
    frame["kind"] = ["bulk"] * len(frame)
    frame.loc[0, "energy_corrected"] += 54 * 20.0  # 20 eV/atom above the rest
    frame.at[1, "forces"] = np.asarray(frame.at[1, "forces"]) + 80.0  # 138 eV/Å atomic forces
    frame.loc[2, "energy_corrected"] += 54 * 20.0
    frame.loc[2, "kind"] = "dimer"  # probes the wall on purpose: kept, weighted down
    result = fit_ace(frame, FitSettings(test_fraction=0), tmp_path / "fit", ["W"])
    assert result.metrics["n_excluded"] == 2 and result.metrics["excluded"] == {"energy": 1, "force": 1}
    train = pd.read_pickle(tmp_path / "fit" / "train.pckl.gzip", compression="gzip")
    assert len(train) == 16 and sorted(set(train["w_factor"])) == [0.1, 1.0]
    with pytest.raises(FitError, match="every one of the 2 structures lies above"):
        fit_ace(frame.iloc[:2], FitSettings(test_fraction=0, max_energy_above_min=None, max_force=1e-9), tmp_path / "f2", ["W"])


def yaml_load(text: str):
    import yaml

    return yaml.safe_load(text)


def test_interrupted_fit_is_cleaned_and_redone(w_npz, tmp_path, fake_pacemaker):
    workdir = tmp_path / "fit"
    (workdir / "member_0").mkdir(parents=True)
    (workdir / "member_0" / "output_potential.yaml").write_text("half-written")
    (workdir / "member_3").mkdir()
    (workdir / "notes.txt").write_text("the user's own file")
    result = fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), workdir, ["W"])
    assert not (workdir / "member_3").exists() and (workdir / "notes.txt").exists()
    assert result.metrics["energy_rmse_test"] is None
    load_ace(result.potential_yaml, result.active_set)  # a real potential, not the debris


@pytest.mark.parametrize("damaged", ["member_0/output_potential.yaml", "member_0/output_potential.asi"])
def test_a_completed_fit_whose_potential_or_active_set_was_cut_short_is_refitted(w_npz, tmp_path, fake_pacemaker, damaged):
    workdir = tmp_path / "fit"
    frame, settings = w_frame(w_npz, BULK_54), FitSettings(test_fraction=0)
    first = fit_ace(frame, settings, workdir, ["W"])
    path = workdir / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # what a full disk or a partial copy leaves
    assert load_fit(workdir) is None  # a campaign's resume refits rather than load it
    again = fit_ace(frame, settings, workdir, ["W"])
    assert not again.reused and again.potential_yaml == first.potential_yaml
    load_ace(again.potential_yaml, again.active_set)


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("crash", "(?s)exit code 3.*something broke"),
        ("nan", "diverged \\(non-finite loss\\)"),
        ("early", "stopped early after 7 of 2000 iterations"),
        ("nopot", "without writing .*output_potential.yaml"),
        ("corrupt", "corrupt or not an ACE B-basis"),
    ],
)
def test_failed_fits_raise_and_leave_no_completion_marker(w_npz, tmp_path, fake_pacemaker, mode, reason):
    fake_pacemaker.setenv("FAKE_MODE", mode)
    with pytest.raises(FitError, match=reason):
        fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), tmp_path, ["W"])
    assert not (tmp_path / "fit_done.json").exists()
    assert (tmp_path / "pacemaker.log").is_file()


def test_a_warm_fit_whose_line_search_gives_up_at_once_sits_at_its_minimum_and_is_kept(w_npz, tmp_path, fake_pacemaker):
    # the final fit on the last iteration's data starts at that fit's minimum: BFGS loses precision within a few steps
    fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), tmp_path / "last", ["W"])
    fake_pacemaker.setenv("FAKE_MODE", "early")
    final = fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), tmp_path / "final", ["W"], warm_from=tmp_path / "last")
    assert final.metrics["warm_start"] is True and (tmp_path / "final" / "fit_done.json").is_file()


@pytest.mark.parametrize("kills, fails", [(2, False), (3, True)])
def test_a_pacemaker_killed_by_a_signal_is_run_again_up_to_three_times(w_npz, tmp_path, fake_pacemaker, kills, fails):
    counter = tmp_path / "kills_left"
    counter.write_text(str(kills))
    fake_pacemaker.setenv("FAKE_MODE", "sigkill")
    fake_pacemaker.setenv("FAKE_KILLS", str(counter))
    workdir = tmp_path / "fit"
    if fails:
        with pytest.raises(FitError, match=r"killed by a signal in each of 3 attempts, the last time by signal 9 \(SIGKILL\)"):
            fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), workdir, ["W"])
        assert not (workdir / "fit_done.json").exists()
    else:
        result = fit_ace(w_frame(w_npz, BULK_54), FitSettings(test_fraction=0), workdir, ["W"])
        assert (workdir / "fit_done.json").is_file() and result.potential_yaml.is_file()
        # the retry started from the input alone: nothing of the killed runs is left
        assert "partial log" not in (workdir / "member_0" / "log.txt").read_text()
    assert counter.read_text() == "0"


# ---------------------------------------------------------------------------------------------- γ and selection
@pytest.fixture(scope="module")
def paper_ace(shared_data, tmp_path_factory):
    """The paper's W potential with an active set built on six 54-atom configurations."""
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import (
        compute_A_active_inverse,
        compute_active_set,
        compute_B_projections,
        save_active_inverse_set,
    )

    npz = np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    pot = shared_data / PAPER_POTENTIAL
    train = [w_atoms(npz, i) for i in BULK_54]
    basis = ACEBBasisSet(BBasisConfiguration(str(pot)))
    asi = tmp_path_factory.mktemp("paper_ace") / "paper.asi"
    inverse = compute_A_active_inverse(compute_active_set(compute_B_projections(basis, train)))
    save_active_inverse_set(str(asi), inverse, elements_name=basis.elements_name)
    return pot, asi, train, npz


def test_gamma_is_at_most_one_on_the_active_set_data_and_large_far_from_it(paper_ace):
    pot, asi, train, npz = paper_ace
    grades = extrapolation_grades(pot, asi, train)
    assert [len(g) for g in grades] == [len(a) for a in train]
    assert max(g.max() for g in grades) <= 1.01
    assert max_gamma(pot, asi, [distorted(npz)])[0] > 5


def test_batched_gamma_equals_pyace_calculator(paper_ace):
    from pyace import PyACECalculator

    pot, asi, _, npz = paper_ace
    atoms = [w_atoms(npz, i) for i in (0, 500, 1000)] + [distorted(npz)]
    calc = PyACECalculator(str(pot))
    calc.set_active_set(str(asi))
    for a, g in zip(atoms, extrapolation_grades(pot, asi, atoms)):
        a.calc = calc
        a.get_potential_energy()
        np.testing.assert_allclose(g, calc.results["gamma"], rtol=1e-6, atol=1e-9)


def test_gamma_input_errors(paper_ace, tmp_path):
    pot, asi, train, _ = paper_ace
    with pytest.raises(MissingFileError):
        max_gamma(tmp_path / "nope.yaml", asi, train)
    with open(tmp_path / "wrong.asi", "wb") as fh:
        np.savez(fh, W=np.eye(5))
    with pytest.raises(FitError, match="does not belong to this potential"):
        max_gamma(pot, tmp_path / "wrong.asi", train)
    slab = train[0].copy()
    slab.pbc = [True, True, False]
    with pytest.raises(UnphysicalStructureError, match="mixed periodicity"):
        max_gamma(pot, asi, [slab])
    assert len(max_gamma(pot, asi, [])) == 0


def test_maxvol_selection_prefers_structures_outside_the_active_set(paper_ace):
    pot, asi, train, npz = paper_ace
    novel = [distorted(npz), w_atoms(npz, 1100), w_atoms(npz, 700)]
    pool = train[:3] + novel
    chosen = select_maxvol(pool, budget=2, potential=pot, active_set=asi)
    assert len(chosen) == len(set(chosen)) <= 2 and set(chosen) <= {3, 4, 5}
    # candidates already in the active set add nothing
    assert select_maxvol(train, budget=5, potential=pot, active_set=asi) == []


def test_selection_before_the_first_fit_uses_an_untrained_basis(w_npz):
    pool = [w_atoms(w_npz, i) for i in range(0, 1026, 40)]
    chosen = select_maxvol(pool, budget=6, elements=["W"], settings=FitSettings())
    assert 0 < len(chosen) <= 6 and len(set(chosen)) == len(chosen)
    assert all(0 <= i < len(pool) for i in chosen)
    # few atoms (fewer than functions): every structure contributes, largest first
    few = [w_atoms(w_npz, i) for i in SMALL[:4]]
    assert sorted(select_maxvol(few, budget=10, elements=["W"])) == [0, 1, 2, 3]


def test_committee_spread_is_zero_for_identical_members(paper_ace, shared_data):
    pot, _, train, _ = paper_ace
    same = committee_spread([pot, pot], train[:2])
    assert np.allclose(same.energy_std, 0) and all(np.allclose(f, 0) for f in same.force_std)
    other = shared_data / "uq_umlip_W/ace_potentials/5_ensemble_potential_0.yaml"
    spread = committee_spread([pot, other], train[:2])
    assert spread.energy_std.shape == (2,) and spread.force_std[0].shape == (54,) and spread.force_std[0].max() > 0


# ---------------------------------------------------------------------------------------------- real pacemaker
@pytest.fixture(scope="module")
def real_fit(tiny_ace_fit, shared_data):
    """The session's tiny real fit (tests/conftest.py) on the SMALL cells."""
    result, frame, settings = tiny_ace_fit
    return result, frame, settings, np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")


@pytest.mark.slow
def test_real_pacemaker_fit_gives_a_potential_whose_gamma_separates_train_from_distorted(real_fit):
    result, frame, settings, npz = real_fit
    assert result.metrics["n_functions"] == 8 and result.metrics["n_iterations"] >= 1
    assert result.metrics["energy_rmse_train"] < 1e3 and result.metrics["force_rmse_train"] < 5
    assert max_gamma(result.potential_yaml, result.active_set, list(frame.ase_atoms)).max() <= 1.02
    assert max_gamma(result.potential_yaml, result.active_set, [distorted(npz)])[0] > 1


@pytest.mark.slow
def test_real_fit_rerun_is_instant(real_fit):
    import time

    result, frame, settings, _ = real_fit
    t0 = time.perf_counter()
    again = fit_ace(frame, settings, result.workdir, ["W"])
    assert again.reused and time.perf_counter() - t0 < 2.0
    assert os.path.getsize(again.potential_yaml) > 0


def test_predictions_add_back_the_reference_energies_a_potential_was_fitted_without(paper_ace, tmp_path):
    from pyace import BBasisConfiguration

    from alloop.train.model import predict, reference_energies

    pot, _, train, _ = paper_ace
    conf = BBasisConfiguration(str(pot))
    conf.metadata["reference_energy"] = json.dumps({"W": -2.0, "shift": 0.5})  # as pacemaker writes it
    shifted = tmp_path / "shifted.yaml"
    conf.save(str(shifted))
    assert reference_energies(shifted) == {"W": -2.0, "shift": 0.5} and reference_energies(pot) == {}
    (e0, f0), (e1, f1) = predict(pot, train[:2]), predict(shifted, train[:2])
    np.testing.assert_allclose(e1 - e0, [-2.5 * len(a) for a in train[:2]])
    np.testing.assert_allclose(f1[0], f0[0])
