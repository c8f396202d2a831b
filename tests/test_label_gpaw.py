"""GPAW labelling with real DFT on tiny W cells (seconds each at PW 350 eV)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import kptdensity2monkhorstpack

import gpaw  # noqa: F401  (a real part: missing means failing)

from alloop.errors import LabelError, MissingFileError, UnphysicalStructureError  # noqa: E402
from alloop.label import GPAWBackend, GPAWSettings, LabelResult, run_with_handlers  # noqa: E402
from alloop.label.gpaw import PAPER_KSPACING, gpaw_parameters, kpts_from_kspacing  # noqa: E402


def rattled_w() -> Atoms:
    atoms = bulk("W", "bcc", a=3.17, cubic=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def w_dimer(distance: float = 2.2, box: float = 6.0) -> Atoms:
    atoms = Atoms("W2", positions=[[0, 0, 0], [0, 0, distance]], cell=[box] * 3, pbc=True)
    atoms.center()
    return atoms


def test_kspacing_follows_vasp_rule_and_matches_ase_density() -> None:
    atoms = rattled_w()
    # The paper's 2π·0.03 Å⁻¹ on a 3.17 Å cubic cell: ceil((1/3.17) / 0.03) = 11 points per axis.
    assert PAPER_KSPACING == pytest.approx(0.188496, abs=1e-6)
    assert kpts_from_kspacing(atoms.cell, PAPER_KSPACING) == (11, 11, 11)
    for spacing in (0.1, 0.25, 0.5):
        ase_mesh = kptdensity2monkhorstpack(atoms, kptdensity=1 / spacing, even=False)
        assert kpts_from_kspacing(atoms.cell, spacing) == tuple(int(n) for n in ase_mesh)
    # A dimer box of 10 Å still gets ceil(0.1 / 0.03) = 4 points per axis, as VASP would use.
    assert kpts_from_kspacing(np.eye(3) * 10, PAPER_KSPACING) == (4, 4, 4)
    params = gpaw_parameters(GPAWSettings(kpts=(2, 3, 4)), atoms)
    assert params["kpts"] == {"size": [2, 3, 4], "gamma": True}
    assert params["occupations"] == {"name": "methfessel-paxton", "width": 0.1, "order": 1}


def test_bulk_w_single_point_is_computed_once(tmp_path) -> None:
    atoms = rattled_w()
    backend = GPAWBackend(GPAWSettings(kpts=(2, 2, 2)))
    result = backend.compute(atoms, tmp_path)
    assert isinstance(result, LabelResult) and result.source == "gpaw" and result.converged
    assert result.forces.shape == (2, 3) and result.forces.dtype == np.float64
    assert np.abs(result.forces.sum(axis=0)).max() < 1e-3  # Newton's third law
    assert np.abs(result.forces).max() > 0.5  # a 0.05 Å rattle of W gives forces of order eV/Å
    assert result.stress is not None and result.stress.shape == (6,)
    assert -25 < result.energy < -15  # two W atoms, GPAW's PAW reference
    assert result.meta["n_scf"] > 3 and result.meta["kpts"] == [2, 2, 2] and result.meta["wall_s"] > 0
    assert (tmp_path / "gpaw.txt").is_file()

    # A finished calculation is never repeated: the recorded result comes back instantly.
    (tmp_path / "gpaw_input.json").write_text("not json: running again would fail")
    again = backend.compute(atoms, tmp_path)
    assert again.energy == result.energy and np.array_equal(again.forces, result.forces)
    # ... but not for another configuration.
    with pytest.raises(LabelError, match="another configuration"):
        backend.compute(w_dimer(), tmp_path)


def test_w_dimer_in_a_box(tmp_path) -> None:
    result = GPAWBackend(GPAWSettings(kpts=(1, 1, 1))).compute(w_dimer(2.2), tmp_path)
    f = result.forces
    assert np.allclose(f[0], -f[1], atol=1e-3)
    assert np.allclose(f[:, :2], 0, atol=1e-3) and abs(f[0, 2]) > 1.0  # along the bond only


def test_non_converged_scf_is_corrected_by_the_handler_chain(tmp_path) -> None:
    backend = GPAWBackend(GPAWSettings(kpts=(2, 2, 2), maxiter=5))
    result = run_with_handlers(backend, rattled_w(), tmp_path, max_corrections=2)

    # The first attempt hit maxiter; it is archived, and the retry ran with corrected settings.
    first = json.loads((tmp_path / "attempts" / "0" / "gpaw_error.json").read_text())
    assert first["kind"] == "scf" and first["retryable"] and "maxiter = 5" in first["reason"]
    (correction,) = result.meta["corrections"]
    assert correction["handler"] == "gpaw-scf"
    assert correction["changes"] == {"maxiter": [5, 10], "mixer_beta": [0.05, 0.025]}
    assert result.meta["settings"]["maxiter"] == 10


def test_budget_exhausted_is_final(tmp_path) -> None:
    backend = GPAWBackend(GPAWSettings(kpts=(1, 1, 1), maxiter=2))
    with pytest.raises(LabelError) as info:
        run_with_handlers(backend, w_dimer(), tmp_path, max_corrections=0)
    assert info.value.kind == "scf" and not info.value.retryable and "after 0 correction" in info.value.reason


def test_timeout_kills_the_gpaw_process(tmp_path) -> None:
    backend = GPAWBackend(GPAWSettings(kpts=(4, 4, 4), walltime_s=1.0))
    with pytest.raises(LabelError) as info:
        backend.compute(rattled_w(), tmp_path)
    assert info.value.kind == "walltime" and info.value.retryable
    assert json.loads((tmp_path / "execute.json").read_text())["timed_out"]
    assert not (tmp_path / "result.json").exists()


def test_crashed_process_is_reported_not_returned(tmp_path) -> None:
    backend = GPAWBackend(GPAWSettings(kpts=(1, 1, 1)))
    backend.prepare(w_dimer(), tmp_path)
    (tmp_path / "gpaw_input.json").write_text("{broken")
    backend.execute(tmp_path)
    with pytest.raises(LabelError, match="GPAW process died with exit code 1") as info:
        backend.read(tmp_path)
    assert info.value.kind == "crash"


def test_missing_paw_setup_names_the_element_and_the_fix(tmp_path, monkeypatch) -> None:
    """A machine where the setups have W but not Mo, simulated (whatever is installed here): the only setup
    folder holds W.PBE.gz, GPAW_SETUP_PATH is unset and the gpaw-data package is absent."""
    import sys

    from alloop.label.gpaw import setup_search_paths

    setups = tmp_path / "setups"
    setups.mkdir()
    (setups / "W.PBE.gz").write_bytes(b"")
    monkeypatch.delenv("GPAW_SETUP_PATH", raising=False)
    monkeypatch.setitem(sys.modules, "gpaw_data", None)  # `import gpaw_data` fails as if not installed
    settings = GPAWSettings(setups_path=setups)
    assert setup_search_paths(settings) == [setups]
    atoms = Atoms("WMo", positions=[[0, 0, 0], [0, 0, 2.3]], cell=[6, 6, 6], pbc=True)
    with pytest.raises(MissingFileError, match="PAW setup for element Mo") as info:
        GPAWBackend(settings).prepare(atoms, tmp_path / "wd")
    assert "gpaw-data" in str(info.value) and "GPAW_SETUP_PATH" in str(info.value) and str(setups) in str(info.value)


def test_clusters_must_come_in_a_periodic_box(tmp_path) -> None:
    with pytest.raises(UnphysicalStructureError, match="periodic"):
        GPAWBackend().prepare(Atoms("W2", positions=[[0, 0, 0], [0, 0, 2.2]]), tmp_path)
