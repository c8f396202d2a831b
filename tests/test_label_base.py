"""The labelling contract: results, idempotent work directories, and the error-handler chain, shown
with a minimal backend built on ASE's EMT (any code plugs in the same way)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from pydantic import BaseModel, ConfigDict

from alloop.atomic import write_json_atomic
from alloop.errors import LabelError
from alloop.label import DFTBackend, LabelFailure, LabelResult, load_result, run_with_handlers
from alloop.label.base import load_atoms
from alloop.label.handlers import KindHandler


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scf_steps: int = 1  # the toy "SCF" converges only with 3 or more
    crash: bool = False


class ToyBackend(DFTBackend):
    """prepare/execute/read split like a file-based code: execute writes output.json, read parses it."""

    name = "toy"
    settings: ToySettings

    def write_inputs(self, atoms, workdir: Path) -> None:
        (workdir / "output.json").unlink(missing_ok=True)

    def execute(self, workdir: Path) -> None:
        runs = workdir.parent / "runs.txt"
        runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
        atoms = load_atoms(workdir)
        atoms.calc = EMT()
        converged = self.settings.scf_steps >= 3
        write_json_atomic(workdir / "output.json", {
            "converged": converged, "energy": atoms.get_potential_energy(),
            "forces": atoms.get_forces().tolist(), "crash": self.settings.crash})

    def parse(self, workdir: Path, atoms) -> LabelResult:
        out = json.loads((workdir / "output.json").read_text())
        if out["crash"]:
            raise LabelFailure("toy code crashed", False, "crash")
        if not out["converged"]:
            raise LabelFailure(f"toy SCF not converged in {self.settings.scf_steps} steps", True, "scf")
        return LabelResult(out["energy"], np.array(out["forces"]), None, "umlip", True, {})


more_steps = KindHandler("toy-scf", "scf", lambda s: s.model_copy(update={"scf_steps": s.scf_steps + 1}))


def cu() -> object:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.02, seed=3)
    return atoms


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs.txt"
    return len(path.read_text()) if path.exists() else 0


def test_label_result_round_trips_through_json() -> None:
    stress = np.arange(9.0).reshape(3, 3)
    stress = (stress + stress.T) / 2
    r = LabelResult(-1.0 / 3.0, np.random.default_rng(0).normal(size=(4, 3)), stress, "gpaw", True, {"n_scf": 7})
    assert r.stress.tolist() == [0.0, 4.0, 8.0, 6.0, 4.0, 2.0]  # Voigt xx yy zz yz xz xy
    back = LabelResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.energy == r.energy and np.array_equal(back.forces, r.forces) and np.array_equal(back.stress, r.stress)
    assert back.meta == {"n_scf": 7}


def test_atomic_write_leaves_only_the_final_file(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "result.json", {"a": 1})
    write_json_atomic(tmp_path / "result.json", {"a": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert json.loads((tmp_path / "result.json").read_text()) == {"a": 2}


def test_compute_records_the_result_and_never_repeats_it(tmp_path: Path) -> None:
    backend = ToyBackend(ToySettings(scf_steps=3))
    wd = tmp_path / "job"
    result = backend.compute(cu(), wd)
    assert load_result(wd).energy == result.energy and runs(tmp_path) == 1
    assert result.meta["n_atoms"] == 4 and len(result.meta["config_hash"]) == 32 and "settings_hash" in result.meta
    assert backend.compute(cu(), wd).energy == result.energy and runs(tmp_path) == 1


def test_non_converged_runs_are_never_returned(tmp_path: Path) -> None:
    with pytest.raises(LabelError) as info:
        ToyBackend(ToySettings()).compute(cu(), tmp_path / "job")
    assert info.value.retryable and info.value.kind == "scf"
    assert load_result(tmp_path / "job") is None


def test_handlers_correct_until_converged(tmp_path: Path) -> None:
    wd = tmp_path / "job"
    result = run_with_handlers(ToyBackend(ToySettings()), cu(), wd, max_corrections=3, handlers=[more_steps])
    assert runs(tmp_path) == 3
    assert [c["changes"] for c in result.meta["corrections"]] == [{"scf_steps": [1, 2]}, {"scf_steps": [2, 3]}]
    assert sorted(p.name for p in (wd / "attempts").iterdir()) == ["0", "1"]


def test_correction_budget_is_kept_across_restarts(tmp_path: Path) -> None:
    wd = tmp_path / "job"
    with pytest.raises(LabelError) as info:
        run_with_handlers(ToyBackend(ToySettings()), cu(), wd, max_corrections=1, handlers=[more_steps])
    assert not info.value.retryable and "after 1 correction(s) (toy-scf)" in info.value.reason

    # A later call (e.g. after the daemon restarted) goes on from the corrected settings (scf_steps = 2),
    # not from scratch, and the corrections already spent count against the budget.
    result = run_with_handlers(ToyBackend(ToySettings()), cu(), wd, max_corrections=2, handlers=[more_steps])
    assert [c["changes"] for c in result.meta["corrections"]] == [{"scf_steps": [1, 2]}, {"scf_steps": [2, 3]}]
    assert runs(tmp_path) == 4  # 1, 2 | 2, 3


def test_errors_without_a_correction_pass_through(tmp_path: Path) -> None:
    with pytest.raises(LabelError) as info:
        run_with_handlers(ToyBackend(ToySettings(crash=True)), cu(), tmp_path / "a", handlers=[more_steps])
    assert info.value.reason == "toy code crashed" and not info.value.retryable

    with pytest.raises(LabelError) as info:  # retryable, but no handler knows it: stays retryable
        run_with_handlers(ToyBackend(ToySettings()), cu(), tmp_path / "b", handlers=[])
    assert info.value.retryable and runs(tmp_path) == 2
