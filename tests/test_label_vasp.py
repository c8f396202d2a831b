"""VASP backend: input writing, and diagnosis/parsing of real VASP outputs (tests/fixtures/vasp, see its
README). There is no VASP binary here; end-to-end runs use a stand-in command that writes a real
OUTCAR into the work directory, as VASP would."""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read

from alloop.errors import ConfigError, LabelError, MissingFileError
from alloop.label import VaspBackend, VaspSettings, run_with_handlers
from alloop.label.vasp import (
    CODE_HANDLERS,
    diagnose,
    more_walltime,
    nelm_correction,
    parse_incar,
    species_order,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vasp"


@pytest.fixture
def potcars(tmp_path: Path) -> Path:
    """A stand-in POTCAR library (real POTCARs are licensed and cannot ship): potpaw_PBE/<El>/POTCAR."""
    root = tmp_path / "pp" / "potpaw_PBE"
    for el in ("Si", "Ni", "C", "W", "Mo"):
        (root / el).mkdir(parents=True)
        (root / el / "POTCAR").write_text(f"  PAW_PBE {el} 08Apr2002\n   TITEL  = PAW_PBE {el} 08Apr2002\n End of Dataset\n")
    return root


def fixture_bytes(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def first_image(name: str) -> Atoms:
    fmt = "vasp-xml" if ".xml" in name else "vasp-out"
    path = FIXTURES / name
    return read(path, format=fmt, index=0)


def workdir_with_output(tmp_path: Path, backend: VaspBackend, fixture: str) -> Path:
    """Prepare a work directory for the fixture's input geometry, then drop the fixture in as VASP's output."""
    wd = tmp_path / fixture.replace(".", "_")
    backend.prepare(first_image(fixture), wd)
    (wd / ("vasprun.xml" if ".xml" in fixture else "OUTCAR")).write_bytes(fixture_bytes(fixture))
    return wd


# ------------------------------------------------------------------------------------------- inputs
def test_incar_template_reproduces_the_papers_methods() -> None:
    tags = VaspSettings().incar_tags()
    assert tags["GGA"] == "PE" and tags["ENCUT"] == "520" and float(tags["EDIFF"]) == 1e-6
    assert float(tags["KSPACING"]) == pytest.approx(2 * math.pi * 0.03, abs=1e-6) and tags["KGAMMA"] == ".TRUE."
    assert tags["ISMEAR"] == "1" and tags["SIGMA"] == "0.1"
    assert tags["LWAVE"] == tags["LCHARG"] == ".FALSE." and tags["NSW"] == "0"
    assert {"NELM", "ALGO"} <= set(tags)

    campaign = VaspSettings(incar={"encut": 600, "lasph": True, "sigma": 0.05})
    tags = campaign.incar_tags()
    assert tags["ENCUT"] == "600" and tags["LASPH"] == ".TRUE." and tags["SIGMA"] == "0.05"


def test_prepare_writes_sorted_poscar_incar_and_potcar(tmp_path: Path, potcars: Path) -> None:
    atoms = Atoms("WMoW", scaled_positions=[[0, 0, 0], [1 / 3, 0.5, 0.5], [2 / 3, 0, 0]], cell=[9.5, 3.2, 3.2], pbc=True)
    backend = VaspBackend(VaspSettings(potcar_dir=potcars, incar={"ENCUT": 550}))
    backend.prepare(atoms, tmp_path)

    poscar = read(tmp_path / "POSCAR", format="vasp")
    assert poscar.get_chemical_symbols() == ["W", "W", "Mo"]  # one block per species, VASP's requirement
    order = json.loads((tmp_path / "vasp_sort.json").read_text())["order"]
    assert np.allclose(poscar.positions, atoms.positions[order])
    potcar = (tmp_path / "POTCAR").read_text()
    assert potcar.index("PAW_PBE W") < potcar.index("PAW_PBE Mo")
    incar = parse_incar((tmp_path / "INCAR").read_text())
    assert incar == backend.settings.incar_tags() and incar["ENCUT"] == "550"


def test_species_order_is_stable_and_invertible() -> None:
    symbols = ["Mo", "W", "Mo", "Nb", "W"]
    species, order = species_order(symbols)
    assert species == ["Mo", "W", "Nb"] and [symbols[i] for i in order] == ["Mo", "Mo", "W", "W", "Nb"]
    values = np.arange(5.0)
    back = np.empty_like(values)
    back[order] = values[order]
    assert np.array_equal(back, values)


def test_missing_potcar_says_which_file_and_how_to_fix(tmp_path: Path, potcars: Path, monkeypatch) -> None:
    monkeypatch.delenv("VASP_PP_PATH", raising=False)
    atoms = Atoms("Ta2", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[3.3] * 3, pbc=True)
    with pytest.raises(MissingFileError, match="potpaw_PBE/Ta/POTCAR") as info:
        VaspBackend().prepare(atoms, tmp_path / "a")
    assert "VASP_PP_PATH" in str(info.value)

    monkeypatch.setenv("VASP_PP_PATH", str(potcars.parent))
    with pytest.raises(MissingFileError, match=str(potcars / "Ta" / "POTCAR")):
        VaspBackend().prepare(atoms, tmp_path / "b")
    VaspBackend(VaspSettings(potcars={"Ta": "W"})).prepare(atoms, tmp_path / "c")  # any dataset label
    assert "PAW_PBE W" in (tmp_path / "c" / "POTCAR").read_text()


def test_relaxations_are_refused(tmp_path: Path, potcars: Path) -> None:
    with pytest.raises(ConfigError, match="NSW"):
        VaspBackend(VaspSettings(potcar_dir=potcars, incar={"NSW": 50, "IBRION": 2})).prepare(first_image("OUTCAR.converged.gz"), tmp_path)


# ------------------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize(
    ("fixture", "free_energy", "n_atoms", "output"),
    [
        ("vasprun.basic.xml", -43.31237198, 8, "vasprun.xml"),
        ("vasprun.ase_pstress.xml", -20.246959373169393, 2, "vasprun.xml"),
        ("OUTCAR.converged.gz", -6.50214658, 2, "OUTCAR"),
        # ionic (not electronic) non-convergence of a relaxation: the first ionic step is a valid single point
        ("OUTCAR.not-converged.gz", -6.50208935, 2, "OUTCAR"),
        ("OUTCAR.ase_example_1.gz", -68.22868532, 18, "OUTCAR"),
    ],
)
def test_finished_runs_are_read(tmp_path: Path, potcars: Path, fixture: str, free_energy: float, n_atoms: int, output: str) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    wd = workdir_with_output(tmp_path, backend, fixture)
    result = backend.finalize(wd)
    assert result.source == "vasp" and result.converged
    assert result.energy == pytest.approx(free_energy, abs=1e-8)  # the force-consistent free energy (TOTEN)
    assert result.forces.shape == (n_atoms, 3) and result.stress is not None and result.stress.shape == (6,)
    assert result.meta["output"] == output and result.meta["n_scf"] < result.meta["nelm"]
    assert (wd / "result.json").is_file()


def test_vasp_544_e0_bug_in_vasprun_does_not_leak(tmp_path: Path, potcars: Path) -> None:
    # basic.xml's final <energy> block has e_0_energy = -0.00053151 (a VASP 5.4 bug); σ→0 comes from the last SC step
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    result = backend.read(workdir_with_output(tmp_path, backend, "vasprun.basic.xml"))
    assert result.meta["energy_sigma0"] == pytest.approx(-43.31210622, abs=1e-8)


@pytest.mark.parametrize("fixture", ["OUTCAR.nelm-breach-consistent.gz", "OUTCAR.nelm-breach-partial.gz"])
def test_scf_that_reached_nelm_is_a_retryable_failure(tmp_path: Path, potcars: Path, fixture: str) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    wd = workdir_with_output(tmp_path, backend, fixture)
    with pytest.raises(LabelError, match="SCF not converged") as info:
        backend.finalize(wd)
    assert info.value.kind == "scf" and info.value.retryable
    assert not (wd / "result.json").exists()


def test_scf_count_in_vasprun_is_compared_with_nelm(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    wd = workdir_with_output(tmp_path, backend, "vasprun.basic.xml")
    xml = (wd / "vasprun.xml").read_text()
    # The same run, as if NELM had been 12: its 12 electronic steps then mean "stopped at NELM".
    marker = '<separator name="electronic convergence" >\n    <i type="int" name="NELM">    60</i>'
    assert marker in xml
    (wd / "vasprun.xml").write_text(xml.replace(marker, marker.replace("60", "12")))
    with pytest.raises(LabelError, match="12 electronic steps reached NELM = 12"):
        backend.read(wd)


def test_unfinished_and_crashed_runs(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    with pytest.raises(LabelError) as info:
        backend.read(workdir_with_output(tmp_path, backend, "OUTCAR.unfinished.gz"))
    assert info.value.kind == "unfinished" and info.value.retryable

    wd = workdir_with_output(tmp_path, backend, "vasprun.basic.xml")
    xml = (wd / "vasprun.xml").read_bytes()
    (wd / "vasprun.xml").write_bytes(xml[: len(xml) // 2])  # killed while writing
    with pytest.raises(LabelError) as info:
        backend.read(wd)
    assert info.value.kind == "unfinished"

    wd = tmp_path / "crashed"
    backend.prepare(first_image("OUTCAR.converged.gz"), wd)
    (wd / "OUTCAR").write_bytes(fixture_bytes("OUTCAR.crashed.gz"))
    with pytest.raises(LabelError) as info:
        backend.read(wd)
    assert info.value.kind == "crash" and info.value.codes == ("vasp_error",) and not info.value.retryable


@pytest.mark.parametrize(
    ("sample", "codes", "retryable"),
    [
        ("stdout", ("tet", "very_bad_news"), True),
        ("stdout_ZBRENT", ("zbrent",), True),
        ("stdout_inconsistent_lattice", ("bravais", "vasp_error"), True),
        ("stdout_bug", ("vasp_bug",), False),
        ("stdout_generic_box_error", ("vasp_error",), False),
        ("stdout_nostart", ("environment",), False),
    ],
)
def test_vasp_stdout_errors_are_recognised(tmp_path: Path, potcars: Path, sample: str, codes: tuple, retryable: bool) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    backend.prepare(first_image("OUTCAR.converged.gz"), tmp_path)
    (tmp_path / "vasp.out").write_bytes(fixture_bytes(sample))
    assert diagnose(tmp_path).errors == codes
    with pytest.raises(LabelError) as info:
        backend.read(tmp_path)
    assert info.value.kind == "crash" and info.value.codes == codes and info.value.retryable is retryable


def test_warnings_in_a_finished_converged_run_are_kept_not_fatal(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    wd = workdir_with_output(tmp_path, backend, "OUTCAR.converged.gz")
    (wd / "vasp.out").write_bytes(fixture_bytes("stdout_warning"))
    assert diagnose(wd).errors == ()
    (wd / "vasp.out").write_text(" WARNING: Sub-Space-Matrix is not hermitian in DAV\n")
    assert backend.read(wd).meta["vasp_warnings"] == ["subspacematrix"]


def test_time_limit_from_the_scheduler_is_a_walltime_failure(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars, walltime_s=3600))
    wd = workdir_with_output(tmp_path, backend, "OUTCAR.unfinished.gz")
    (wd / "slurm-42.out").write_text("slurmstepd: error: *** JOB 42 ON n1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***\n")
    with pytest.raises(LabelError) as info:
        backend.read(wd)
    assert info.value.kind == "walltime" and info.value.retryable
    assert more_walltime(backend.settings).walltime_s == 7200


# ------------------------------------------------------------------------------------------- corrections
def test_nelm_correction_ladder() -> None:
    s = VaspSettings()
    steps = []
    for _ in range(5):
        s = nelm_correction(s)
        steps.append(dict(s.incar))
    assert steps[0] == {"ALGO": "All"}
    assert steps[1] == {"ALGO": "All", "AMIX": 0.1, "BMIX": 0.01, "NELM": 200}
    assert steps[2]["NELM"] == 400 and steps[3]["NELM"] == 500
    assert steps[4] == steps[3]  # nothing left: run_with_handlers stops here


@pytest.mark.parametrize(
    ("code", "incar", "expected"),
    [
        ("bravais", {}, {"ISYM": 0}),
        ("zbrent", {}, {"EDIFF": 1e-6 / 10}),
        ("tet", {"ISMEAR": -5}, {"ISMEAR": 1, "SIGMA": 0.1}),
        ("subspacematrix", {}, {"ALGO": "All"}),  # LREAL and PREC are already the safe choices
        ("subspacematrix", {"LREAL": "Auto"}, {"LREAL": False}),
        ("brmix", {}, {"ISYM": 0}),
        ("edddav", {}, {"ALGO": "All"}),
    ],
)
def test_error_code_corrections(code: str, incar: dict, expected: dict) -> None:
    (handler,) = [h for h in CODE_HANDLERS if h.fixes(code)]
    before = VaspSettings(incar=incar)
    after = handler.correct(before)
    changed = {k: v for k, v in after.incar.items() if before.incar.get(k) != v}
    assert changed == expected


FAKE_VASP = """
import gzip, pathlib
calls = pathlib.Path({calls!r})
calls.write_text(str(int(calls.read_text()) + 1) if calls.exists() else "1")
algo_all = "ALGO = All" in pathlib.Path("INCAR").read_text()
src = pathlib.Path({good!r} if algo_all else {bad!r})
pathlib.Path("OUTCAR").write_bytes(gzip.decompress(src.read_bytes()))
print(" running on    1 total cores")
"""


def test_end_to_end_nelm_failure_is_corrected_and_never_rerun(tmp_path: Path, potcars: Path) -> None:
    """A stand-in VASP that fails SCF (NELM reached) unless ALGO = All, then converges."""
    script = tmp_path / "fake_vasp.py"
    calls = tmp_path / "calls"
    script.write_text(FAKE_VASP.format(calls=str(calls), good=str(FIXTURES / "OUTCAR.converged.gz"),
                                       bad=str(FIXTURES / "OUTCAR.nelm-breach-consistent.gz")))
    backend = VaspBackend(VaspSettings(potcar_dir=potcars, command=f"{sys.executable} {script}"))
    atoms = first_image("OUTCAR.converged.gz")
    wd = tmp_path / "job"

    result = run_with_handlers(backend, atoms, wd, max_corrections=3)
    assert result.energy == pytest.approx(-6.50214658) and calls.read_text() == "2"
    assert result.meta["incar"]["ALGO"] == "All"
    assert [c["handler"] for c in result.meta["corrections"]] == ["vasp-nelm"]
    assert (wd / "attempts" / "0" / "OUTCAR").is_file()

    again = run_with_handlers(backend, atoms, wd)
    assert again.energy == result.energy and calls.read_text() == "2"


def test_execute_enforces_walltime(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars, command="sleep 30", walltime_s=0.5))
    with pytest.raises(LabelError) as info:
        backend.compute(first_image("OUTCAR.converged.gz"), tmp_path)
    assert info.value.kind == "walltime"
    assert json.loads((tmp_path / "execute.json").read_text())["timed_out"]


def test_missing_command_says_how_to_set_it(tmp_path: Path, potcars: Path, monkeypatch) -> None:
    monkeypatch.delenv("ASE_VASP_COMMAND", raising=False)
    monkeypatch.delenv("VASP_COMMAND", raising=False)
    with pytest.raises(MissingFileError, match="ASE_VASP_COMMAND"):
        VaspBackend(VaspSettings(potcar_dir=potcars)).compute(first_image("OUTCAR.converged.gz"), tmp_path)
