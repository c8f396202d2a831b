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

from pymatgen.io.vasp.inputs import Incar

from alloop.errors import ConfigError, LabelError, MissingFileError
from alloop.label import VaspBackend, VaspSettings, run_with_handlers
from alloop.label.handlers import correct_failure
from alloop.label.vasp import species_order
from alloop.label.vasp_corrections import more_walltime
from alloop.label.vasp_diagnosis import diagnose

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
    incar = VaspSettings().incar_file()
    assert incar["GGA"].upper() == "PE" and incar["ENCUT"] == 520 and incar["EDIFF"] == 1e-6
    assert incar["KSPACING"] == pytest.approx(2 * math.pi * 0.03, abs=1e-6) and incar["KGAMMA"] is True
    assert incar["ISMEAR"] == 1 and incar["SIGMA"] == 0.1
    assert incar["LWAVE"] is incar["LCHARG"] is False and incar["NSW"] == 0
    assert {"NELM", "ALGO"} <= set(incar)

    campaign = VaspSettings(incar={"encut": 600, "lasph": True, "sigma": 0.05, "nelmin": None})
    incar = campaign.incar_file()
    assert incar["ENCUT"] == 600 and incar["LASPH"] is True and incar["SIGMA"] == 0.05
    assert "NELMIN" not in incar  # null removes a tag of the template


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
    incar = Incar.from_file(tmp_path / "INCAR")
    assert incar == backend.settings.incar_file() and incar["ENCUT"] == 550


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
    with pytest.raises(LabelError, match="refused to continue") as info:
        backend.read(wd)
    # VASP's ERROR box with no error custodian knows: rerunning the same input cannot help
    assert info.value.kind == "crash" and info.value.codes == () and not info.value.retryable


@pytest.mark.parametrize(
    ("sample", "kind", "codes", "retryable", "says"),
    [
        ("stdout", "crash", ("tet",), True, "tet"),  # custodian knows the tetrahedron error beside VERY BAD NEWS
        ("stdout_ZBRENT", "crash", ("zbrent",), True, "zbrent"),
        ("stdout_inconsistent_lattice", "crash", ("bravais",), True, "bravais"),
        ("stdout_bug", "crash", (), False, "RHOPS /= RHOAE"),  # VASP's BUG box: a person has to look
        ("stdout_generic_box_error", "crash", (), False, "Bla bla bla"),  # an ERROR box custodian has no code for
        ("stdout_nostart", "unfinished", (), True, "failed to locate mpirun"),  # not VASP's fault: run again
    ],
)
def test_vasp_stdout_errors_are_recognised(tmp_path: Path, potcars: Path, sample: str, kind: str, codes: tuple,
                                           retryable: bool, says: str) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    backend.prepare(first_image("OUTCAR.converged.gz"), tmp_path)
    (tmp_path / "vasp.out").write_bytes(fixture_bytes(sample))
    assert diagnose(tmp_path).errors == codes  # custodian's VaspErrorHandler names
    with pytest.raises(LabelError) as info:
        backend.read(tmp_path)
    assert info.value.kind == kind and info.value.codes == codes and info.value.retryable is retryable
    assert says in info.value.reason


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
def failed_attempt(tmp_path: Path, backend: VaspBackend, output: str, stdout: str | None = None) -> tuple[Path, LabelError]:
    """A work directory whose run left the real output `output` (and VASP stdout `stdout`), and its failure."""
    wd = workdir_with_output(tmp_path, backend, output)
    if stdout is not None:
        (wd / "vasp.out").write_bytes(fixture_bytes(stdout))
    with pytest.raises(LabelError) as info:
        backend.read(wd)
    return wd, info.value


@pytest.mark.parametrize(
    ("stdout", "changes"),
    [
        ("stdout", {"incar.ISMEAR": [None, 0], "incar.SIGMA": [None, 0.05]}),
        ("stdout_ZBRENT", {"incar.EDIFF": [None, 1e-7], "incar.NELMIN": [None, 8]}),
        ("stdout_inconsistent_lattice", {"incar.SYMPREC": [None, 1e-6]}),
    ],
)
def test_custodian_corrects_the_errors_it_finds(tmp_path: Path, potcars: Path, stdout: str, changes: dict) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    wd, error = failed_attempt(tmp_path, backend, "OUTCAR.unfinished.gz", stdout)
    corrections: list[dict] = []
    corrected = correct_failure(backend, wd, error, corrections)
    (record,) = corrections
    assert record["handler"] == "vasp-errors" and record["changes"] == changes
    assert record["custodian"]["handler"] == "VaspErrorHandler" and record["custodian"]["errors"] == list(error.codes)
    assert record["custodian"]["not_applied"] == []  # nothing beyond INCAR edits was proposed
    assert json.loads((wd / "corrections.json").read_text()) == corrections
    assert (wd / "attempts" / "0" / "vasp.out").is_file() and not list(wd.glob("error.*.tar.gz"))
    incar = corrected.settings.incar_file()
    assert all(incar[key.split(".")[1]] == new for key, (_, new) in changes.items())


def test_custodians_ladder_ends_in_quarantine(tmp_path: Path, potcars: Path) -> None:
    """Bravais-lattice error: SYMPREC 1e-6, then ISYM = 0, then custodian has nothing left → quarantine."""
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    corrections: list[dict] = []
    for _ in range(2):
        wd, error = failed_attempt(tmp_path, backend, "OUTCAR.unfinished.gz", "stdout_inconsistent_lattice")
        backend = correct_failure(backend, wd, error, corrections, max_corrections=5)
    assert backend.settings.incar == {"SYMPREC": 1e-6, "ISYM": 0}
    wd, error = failed_attempt(tmp_path, backend, "OUTCAR.unfinished.gz", "stdout_inconsistent_lattice")
    with pytest.raises(LabelError, match="no further correction") as info:
        correct_failure(backend, wd, error, corrections, max_corrections=5)
    assert not info.value.retryable and info.value.kind == "crash" and len(corrections) == 2


def test_scf_at_nelm_in_an_outcar_climbs_custodians_algo_and_mixing_ladder(tmp_path: Path, potcars: Path) -> None:
    backend = VaspBackend(VaspSettings(potcar_dir=potcars))
    corrections: list[dict] = []
    for _ in range(2):
        wd, error = failed_attempt(tmp_path, backend, "OUTCAR.nelm-breach-consistent.gz")
        assert error.kind == "scf"
        backend = correct_failure(backend, wd, error, corrections, max_corrections=3)
    assert [c["handler"] for c in corrections] == ["vasp-nonconverging"] * 2
    assert corrections[0]["changes"] == {"incar.ALGO": [None, "All"], "incar.ISEARCH": [None, 1]}
    assert corrections[1]["changes"] == {"incar.ALGO": ["All", "Normal"], "incar.AMIX": [None, 0.1],
                                         "incar.BMIX": [None, 0.01], "incar.ICHARG": [None, 2]}


def test_scf_at_nelm_in_a_vasprun_is_custodians_unconverged_error(tmp_path: Path, potcars: Path) -> None:
    # basic.xml ran with ALGO = Fast: UnconvergedErrorHandler's next step is ALGO = Normal
    backend = VaspBackend(VaspSettings(potcar_dir=potcars, incar={"ALGO": "Fast"}))
    wd = workdir_with_output(tmp_path, backend, "vasprun.basic.xml")
    marker = '<i type="int" name="NELM">    60</i>'
    (wd / "vasprun.xml").write_text((wd / "vasprun.xml").read_text().replace(marker, marker.replace("60", "12")))
    with pytest.raises(LabelError) as info:
        backend.read(wd)
    corrections: list[dict] = []
    corrected = correct_failure(backend, wd, info.value, corrections)
    assert corrections[0]["handler"] == "vasp-unconverged" and corrections[0]["changes"] == {"incar.ALGO": ["Fast", "Normal"]}
    assert corrected.settings.incar_file()["ALGO"] == "Normal"


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
    assert [c["handler"] for c in result.meta["corrections"]] == ["vasp-nonconverging"]
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


def test_without_the_vasp_extra_the_error_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "custodian.vasp", None)  # as if custodian were not installed
    with pytest.raises(MissingFileError, match=r"pip install 'alloop\[vasp\]'"):
        diagnose(tmp_path)
