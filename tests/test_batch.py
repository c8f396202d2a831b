"""DFT calculations as batch jobs (alloop.cluster.batch, alloop.label.batch): on the session's private SLURM on
localhost (the `slurm` fixture, tests/conftest.py; fails without root or the SLURM packages; these tests are
marked `slurm`, hence `slow`), and PBS/LSF command building and output parsing against stand-in
qsub/qstat/bsub/bjobs commands that print recorded output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alloop.cluster.batch import (
    BatchSettings,
    JobState,
    LSFScheduler,
    PBSScheduler,
    SchedulerError,
    SlurmScheduler,
    make_scheduler,
    parse_bjobs,
    parse_qstat_full,
    parse_squeue,
    render_template,
)
from alloop.errors import ConfigError, LabelError, StateError
from alloop.label import GPAWSettings, VaspSettings, compute_label
from alloop.label.batch import JOB_OUTPUT, attempt_number, collect_job, job_name, job_started, prepare_job
from tests.slurm_cluster import SlurmCluster
from tests.test_label_vasp import FIXTURES, first_image


W_TINY = GPAWSettings(ecut=250, kpts=(1, 1, 1), energy_tol=1e-7, density_tol=1e-5)


def w_bcc() -> Atoms:
    atoms = bulk("W", "bcc", a=3.17, cubic=True)
    atoms.rattle(0.05, seed=1)  # non-zero forces, so the comparison means something
    return atoms


@pytest.fixture
def potcars(tmp_path: Path) -> Path:
    """A stand-in POTCAR library (real ones are licensed): potpaw_PBE/<El>/POTCAR with a TITEL line."""
    root = tmp_path / "pp" / "potpaw_PBE"
    for el in ("Si", "W"):
        (root / el).mkdir(parents=True)
        (root / el / "POTCAR").write_text(f"   TITEL  = PAW_PBE {el} 08Apr2002\n End of Dataset\n")
    return root


# A VASP stand-in: writes the OUTCAR of a real run into the work directory. Which one depends on the
# INCAR, like a real SCF that converges only with ALGO = All; `sleep` makes a job that runs a while.
FAKE_VASP = """
import gzip, pathlib, sys, time
good, bad, sleep = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(sleep)
src = good if "ALGO = All" in pathlib.Path("INCAR").read_text() else bad
pathlib.Path("OUTCAR").write_bytes(gzip.decompress(pathlib.Path(src).read_bytes()))
"""


def fake_vasp(tmp_path: Path, potcars: Path, good: str, bad: str, sleep: float = 0.0) -> VaspSettings:
    script = tmp_path / "fake_vasp.py"
    script.write_text(FAKE_VASP)
    return VaspSettings(potcar_dir=potcars,
                        command=f"{sys.executable} {script} {FIXTURES / good} {FIXTURES / bad} {sleep}")


def wait_until_done(scheduler: SlurmScheduler, job_id: str, timeout_s: float = 60.0) -> JobState:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = scheduler.states([job_id])[job_id]
        if not state.active:
            return state
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still active after {timeout_s} s")


def wait_for_state(scheduler: SlurmScheduler, job_id: str, want: JobState, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while scheduler.states([job_id])[job_id] != want:
        assert time.monotonic() < deadline, f"job {job_id} never became {want.value}"
        time.sleep(0.2)


def run_job(dft, atoms: Atoms, wd: Path, batch: BatchSettings, attempt: int = 0):
    """One round trip: prepare, submit, wait, collect."""
    scheduler = make_scheduler(batch)
    script = prepare_job(dft, atoms, wd, batch, attempt)
    job_id = scheduler.submit(script, wd, job_name(wd, attempt))
    wait_until_done(scheduler, job_id)
    return collect_job(dft, wd, max_corrections=1)


# ------------------------------------------------------------------------------------------ real SLURM
@pytest.mark.slurm
def test_gpaw_job_on_slurm_equals_the_in_process_label(slurm: SlurmCluster, tmp_path: Path) -> None:
    batch = BatchSettings(queue=slurm.partition, walltime="00:10:00")
    scheduler = SlurmScheduler()
    wd = tmp_path / "job"
    script = prepare_job(W_TINY, w_bcc(), wd, batch)
    assert "--time=01:05:00" in script.read_text()  # GPAW's own walltime_s (1 h) + grace beats 10 min

    job_id = scheduler.submit(script, wd, job_name(wd, 0))
    assert wait_until_done(scheduler, job_id) == JobState.finished
    result = collect_job(W_TINY, wd)

    reference = compute_label(W_TINY, w_bcc(), tmp_path / "in_process")
    assert result is not None and result.source == "gpaw"
    assert result.energy == pytest.approx(reference.energy, abs=1e-6)
    np.testing.assert_allclose(result.forces, reference.forces, atol=1e-5)
    assert json.loads((wd / "result.json").read_text())["energy"] == result.energy
    assert collect_job(W_TINY, wd).energy == result.energy  # collecting twice reads result.json


@pytest.mark.slurm
def test_vasp_jobs_converge_get_corrected_or_are_quarantined(slurm: SlurmCluster, tmp_path: Path,
                                                             potcars: Path) -> None:
    batch = BatchSettings(queue=slurm.partition, mpi_launcher="env OMP_NUM_THREADS={cpus_per_task}")
    atoms = first_image("OUTCAR.converged.gz")

    converged = fake_vasp(tmp_path, potcars, "OUTCAR.converged.gz", "OUTCAR.converged.gz")
    result = run_job(converged, atoms, tmp_path / "ok", batch)
    assert result is not None and result.energy == pytest.approx(-6.50214658)

    # SCF reaches NELM unless ALGO = All: the first job is corrected, the resubmitted one converges.
    nelm = fake_vasp(tmp_path, potcars, "OUTCAR.converged.gz", "OUTCAR.nelm-breach-consistent.gz")
    wd = tmp_path / "nelm"
    assert run_job(nelm, atoms, wd, batch) is None
    (correction,) = json.loads((wd / "corrections.json").read_text())
    assert correction["handler"] == "vasp-nonconverging"  # custodian's ALGO ladder, for an OUTCAR-only run
    assert correction["changes"] == {"incar.ALGO": [None, "All"], "incar.ISEARCH": [None, 1]}
    assert (wd / "attempts" / "0" / "OUTCAR").is_file() and (wd / "attempts" / "0" / JOB_OUTPUT).is_file()
    result = run_job(nelm, atoms, wd, batch, attempt=1)
    assert result is not None and result.meta["incar"]["ALGO"] == "All"
    assert [c["handler"] for c in result.meta["corrections"]] == ["vasp-nonconverging"]

    # Never converges: one correction (max_corrections=1), then quarantine.
    never = fake_vasp(tmp_path, potcars, "OUTCAR.nelm-breach-consistent.gz", "OUTCAR.nelm-breach-consistent.gz")
    wd = tmp_path / "never"
    assert run_job(never, atoms, wd, batch) is None
    with pytest.raises(LabelError, match="still failing after 1 correction") as info:
        run_job(never, atoms, wd, batch, attempt=1)
    assert not info.value.retryable and info.value.kind == "scf"


@pytest.mark.slurm
def test_a_cancelled_job_is_unfinished_and_runs_again(slurm: SlurmCluster, tmp_path: Path, potcars: Path) -> None:
    batch = BatchSettings(queue=slurm.partition)
    scheduler = SlurmScheduler()
    atoms = first_image("OUTCAR.converged.gz")
    slow = fake_vasp(tmp_path, potcars, "OUTCAR.converged.gz", "OUTCAR.converged.gz", sleep=60)
    wd = tmp_path / "job"
    job_id = scheduler.submit(prepare_job(slow, atoms, wd, batch), wd, job_name(wd, 0))
    wait_for_state(scheduler, job_id, JobState.running)
    scheduler.cancel(job_id)
    assert wait_until_done(scheduler, job_id) == JobState.cancelled

    with pytest.raises(LabelError) as info:
        collect_job(slow, wd)
    # No handler changes anything for a cancelled job: it may be resubmitted as it is.
    assert info.value.kind == "unfinished" and info.value.retryable and "cancelled" in info.value.reason
    assert not (wd / "corrections.json").exists()

    fast = fake_vasp(tmp_path, potcars, "OUTCAR.converged.gz", "OUTCAR.converged.gz")
    assert run_job(fast, atoms, wd, batch, attempt=1).energy == pytest.approx(-6.50214658)


@pytest.mark.slurm
def test_find_sees_a_queued_job_by_its_name(slurm: SlurmCluster, tmp_path: Path, potcars: Path) -> None:
    """After a crash between submit and recording the id, the job is found by name, never submitted twice."""
    batch = BatchSettings(queue=slurm.partition, extra_directives=["--hold"])  # stays pending
    scheduler = SlurmScheduler()
    wd = tmp_path / "job"
    script = prepare_job(fake_vasp(tmp_path, potcars, "OUTCAR.converged.gz", "OUTCAR.converged.gz"),
                         first_image("OUTCAR.converged.gz"), wd, batch, attempt=2)
    name = job_name(wd, 2)
    assert scheduler.find(name) is None
    job_id = scheduler.submit(script, wd, name)
    assert scheduler.find(name) == job_id and scheduler.states([job_id]) == {job_id: JobState.pending}
    assert scheduler.find(job_name(wd, 3)) is None and not job_started(wd)
    scheduler.cancel(job_id)
    wait_until_done(scheduler, job_id)
    assert scheduler.find(name) is None
    assert scheduler.states(["999999"]) == {"999999": JobState.unknown}  # forgotten ids: read the outputs


@pytest.mark.slurm
def test_sbatch_errors_carry_the_schedulers_message(slurm: SlurmCluster, tmp_path: Path, monkeypatch) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH --partition=nonexistent\ntrue\n")
    with pytest.raises(SchedulerError, match="invalid partition"):
        SlurmScheduler().submit(script, tmp_path, "x")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SchedulerError, match="'sbatch' is not on PATH"):
        SlurmScheduler().submit(script, tmp_path, "x")


@pytest.mark.slurm
def test_dask_jobqueue_runs_tasks_on_slurm_workers(slurm: SlurmCluster) -> None:
    from alloop.cluster import open_client
    from alloop.config import cluster_settings

    settings = cluster_settings(engine="slurm", cores=1, memory="1GB", walltime="00:10:00", interface="lo",
                               queue=slurm.partition, minimum_workers=1, maximum_workers=1)
    with open_client(settings) as client:
        assert client.submit(lambda x: x + 1, 41).result(timeout=60) == 42


def _sleep_then_report_job(seconds: float) -> str:
    import os
    import time

    time.sleep(seconds)
    return os.environ["SLURM_JOB_ID"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_task_whose_worker_job_is_cancelled_reruns_on_a_new_worker(slurm: SlurmCluster) -> None:
    """adapt() replaces a worker whose job died mid-task, and Dask reruns the task there (~40 s here)."""
    from alloop.cluster import open_client
    from alloop.config import cluster_settings

    settings = cluster_settings(engine="slurm", cores=1, memory="1GB", walltime="00:10:00", interface="lo",
                               queue=slurm.partition, minimum_workers=1, maximum_workers=1)
    with open_client(settings) as client:
        future = client.submit(_sleep_then_report_job, 5, pure=False)
        deadline = time.monotonic() + 60
        while not any(client.processing().values()):
            assert time.monotonic() < deadline, "no worker started the task"
            time.sleep(0.3)
        (first_job,) = slurm.run("squeue", "-h", "-t", "running", "-o", "%i").stdout.split()
        SlurmScheduler().cancel(first_job)
        assert future.result(timeout=120) != first_job


# ------------------------------------------------------------------------------------------ without a scheduler
def test_job_script_has_resources_modules_prologue_and_launcher(tmp_path: Path, potcars: Path) -> None:
    batch = BatchSettings(queue="short", account="proj42", ntasks=16, memory="32G", walltime="02:00:00",
                          modules=["intel/2024", "vasp/6.4.2"], prologue=["ulimit -s unlimited"],
                          extra_directives=["--exclusive", "#SBATCH --constraint=cpu"],
                          mpi_launcher="mpirun -n {ntasks}", python="/opt/py/bin/python")
    wd = tmp_path / "job"
    vasp = VaspSettings(potcar_dir=potcars, walltime_s=3600)
    script = prepare_job(vasp, first_image("OUTCAR.converged.gz"), wd, batch)
    text = script.read_text()
    for line in ("#SBATCH --job-name=" + job_name(wd, 0), f"#SBATCH --output={wd.resolve() / JOB_OUTPUT}",
                 "#SBATCH --ntasks=16", "#SBATCH --time=02:00:00", "#SBATCH --partition=short",
                 "#SBATCH --account=proj42", "#SBATCH --mem=32G", "#SBATCH --exclusive", "#SBATCH --constraint=cpu",
                 "module load intel/2024\nmodule load vasp/6.4.2", "ulimit -s unlimited",
                 f"/opt/py/bin/python -m alloop.label.execute --launcher 'mpirun -n 16' {wd.resolve()}"):
        assert line in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert (wd / "INCAR").is_file() and (wd / "POTCAR").is_file()


def test_launcher_goes_in_front_of_the_vasp_command(tmp_path: Path, potcars: Path) -> None:
    from alloop.label.execute import backend_from_workdir

    prepare_job(VaspSettings(potcar_dir=potcars, command="vasp_std"), first_image("OUTCAR.converged.gz"), tmp_path,
                BatchSettings())
    assert backend_from_workdir(tmp_path, "srun --mpi=pmix").settings.command == "srun --mpi=pmix vasp_std"
    assert backend_from_workdir(tmp_path).settings.command == "vasp_std"


def test_unknown_template_placeholders_are_refused() -> None:
    assert render_template("#SBATCH -J {{ job_name }}\necho ${HOME}", {"job_name": "a"}) == "#SBATCH -J a\necho ${HOME}"
    with pytest.raises(ConfigError, match=r"\{\{walltme\}\}"):
        render_template("#SBATCH --time={{walltme}}", {"walltime": "1:00:00"})


def test_job_names_are_stable_and_distinct(tmp_path: Path) -> None:
    assert job_name(tmp_path / "a", 0) == job_name(tmp_path / "a", 0)
    names = {job_name(tmp_path / d, n) for d in "ab" for n in range(3)}
    assert len(names) == 6 and all(len(n) <= 15 for n in names)


def _killed_at_its_time_limit(tmp_path: Path) -> tuple[GPAWSettings, BatchSettings, Path]:
    """(GPAW settings, batch settings, work directory) of a 30-minute GPAW job that SLURM killed at its limit."""
    batch = BatchSettings(walltime="00:30:00")
    gpaw = W_TINY.model_copy(update={"walltime_s": 1800.0})
    wd = tmp_path / "job"
    prepare_job(gpaw, w_bcc(), wd, batch)
    (wd / JOB_OUTPUT).write_text("slurmstepd: error: *** JOB 7 ON n1 CANCELLED AT 2026-01-01T00:00:00 "
                                 "DUE TO TIME LIMIT ***\n")
    return gpaw, batch, wd


def test_a_job_killed_at_its_time_limit_gets_more_time(tmp_path: Path) -> None:
    """SLURM's walltime message in job.out turns an unfinished GPAW run into a walltime failure; the
    correction doubles GPAW's walltime_s and the next job asks for correspondingly more time."""
    gpaw, batch, wd = _killed_at_its_time_limit(tmp_path)
    assert "--time=00:35:00" in (wd / "job.sh").read_text()
    assert collect_job(gpaw, wd) is None
    (correction,) = json.loads((wd / "corrections.json").read_text())
    assert correction["handler"] == "gpaw-walltime" and correction["changes"] == {"walltime_s": [1800.0, 3600.0]}
    assert "--time=01:05:00" in prepare_job(gpaw, w_bcc(), wd, batch, attempt=1).read_text()


def test_the_callers_record_of_corrections_decides_not_the_work_directory(tmp_path: Path) -> None:
    """A campaign keeps the corrections in its database: with corrections.json deleted, or cut short by a full
    disk, the next attempt still runs with the corrected settings, and a damaged result.json reads as absent."""
    gpaw, batch, wd = _killed_at_its_time_limit(tmp_path)
    corrections: list[dict] = []
    assert collect_job(gpaw, wd, corrections) is None
    assert [c["handler"] for c in corrections] == ["gpaw-walltime"]
    for damage in ("deleted", "truncated"):
        if damage == "deleted":
            (wd / "corrections.json").unlink()
        else:
            (wd / "corrections.json").write_text('[{"handler": "gpaw-wall')
        assert "--time=01:05:00" in prepare_job(gpaw, w_bcc(), wd, batch, attempt_number(0, len(corrections)),
                                                corrections).read_text()
    (wd / "result.json").write_text('{"energy": -1.0, "forc')
    with pytest.raises(LabelError, match="never started"):  # read from the outputs, of which there are none yet
        collect_job(gpaw, wd, corrections)


def test_a_correction_its_caller_never_recorded_is_taken_up_not_made_twice(tmp_path: Path) -> None:
    """Killed after the correction archived the attempt and wrote corrections.json but before the database kept the
    list: the resumed collect finds the unrecorded correction (its archive and its record, extending the caller's
    list), hands it back for the database and submits the corrected job; it neither quarantines the
    configuration for want of inputs nor corrects the same failure again."""
    gpaw, batch, wd = _killed_at_its_time_limit(tmp_path)
    assert collect_job(gpaw, wd, []) is None  # the correction is made; the kill comes before the caller records it
    recorded: list[dict] = []  # the database's list, one behind
    assert collect_job(gpaw, wd, recorded) is None
    assert [c["handler"] for c in recorded] == ["gpaw-walltime"]
    assert sorted(p.name for p in (wd / "attempts").iterdir()) == ["0"]  # archived once
    assert "--time=01:05:00" in prepare_job(gpaw, w_bcc(), wd, batch, attempt_number(0, len(recorded)),
                                            recorded).read_text()


def test_a_job_that_never_started_says_so(tmp_path: Path) -> None:
    wd = tmp_path / "job"
    prepare_job(W_TINY, w_bcc(), wd, BatchSettings())
    with pytest.raises(LabelError, match="never started") as info:
        collect_job(W_TINY, wd)
    assert info.value.retryable and info.value.kind == "unfinished"


def test_a_finished_work_directory_needs_no_job(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps(
        {"energy": -1.0, "forces": [[0, 0, 0]], "stress": None, "source": "gpaw", "converged": True, "meta": {}}))
    assert collect_job(W_TINY, tmp_path).energy == -1.0
    with pytest.raises(StateError, match="already holds a finished result"):
        prepare_job(W_TINY, w_bcc(), tmp_path, BatchSettings())


def test_squeue_and_sacct_output_is_parsed() -> None:
    text = "101 PENDING al0011aabb-0\n102 RUNNING al0011aabb-1\n103 COMPLETED x\n104 CANCELLED y\n105 TIMEOUT z\n"
    states = {i: s for i, (s, _) in parse_squeue(text).items()}
    assert states == {"101": JobState.pending, "102": JobState.running, "103": JobState.finished,
                      "104": JobState.cancelled, "105": JobState.timeout}
    from alloop.cluster.batch import parse_sacct

    assert parse_sacct("7|CANCELLED by 0\n8|OUT_OF_MEMORY\n") == {"7": JobState.cancelled, "8": JobState.failed}


# ------------------------------------------------------------------------------------------ PBS and LSF
def stand_in(bin_dir: Path, name: str, stdout: str, rc: int = 0, stderr: str = "") -> Path:
    """An executable `name` that records its arguments (and stdin) and prints recorded output."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.args"
    exe = bin_dir / name
    exe.write_text(f"#!/bin/bash\necho \"$@\" >> {log}\n[ -t 0 ] || cat > {bin_dir / (name + '.stdin')}\n"
                   f"cat <<'EOF'\n{stdout}\nEOF\necho -n {json.dumps(stderr)} >&2\nexit {rc}\n")
    exe.chmod(0o755)
    return log


QSTAT_F = """\
Job Id: 4711.pbs01
    Job_Name = al1a2b3c4d-0
    Job_Owner = me@login1
    job_state = R
    queue = workq
Job Id: 4712.pbs01
    Job_Name = al1a2b3c4d-1
    job_state = F
    Exit_status = 0
Job Id: 4713.pbs01
    Job_Name = al5e6f7a8b-0
    job_state = F
    Exit_status = -29
Job Id: 4714.pbs01
    Job_Name = al5e6f7a8b-1
    job_state = Q
"""


def test_pbs_commands_and_parsing(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pbs = PBSScheduler()
    qsub = stand_in(bin_dir, "qsub", "4711.pbs01")
    assert pbs.submit(tmp_path / "job.sh", tmp_path, "al1a2b3c4d-0") == "4711.pbs01"
    assert qsub.read_text().split() == ["-N", "al1a2b3c4d-0", str(tmp_path / "job.sh")]

    stand_in(bin_dir, "qstat", QSTAT_F, rc=35, stderr="qstat: Unknown Job Id 4799.pbs01")
    assert pbs.states(["4711.pbs01", "4712.pbs01", "4713.pbs01", "4714.pbs01", "4799.pbs01"]) == {
        "4711.pbs01": JobState.running, "4712.pbs01": JobState.finished, "4713.pbs01": JobState.timeout,
        "4714.pbs01": JobState.pending, "4799.pbs01": JobState.unknown}
    assert parse_qstat_full(QSTAT_F)["4711.pbs01"] == (JobState.running, "al1a2b3c4d-0")

    qselect = stand_in(bin_dir, "qselect", "4714.pbs01")
    assert pbs.find("al5e6f7a8b-1") == "4714.pbs01"
    assert "-N al5e6f7a8b-1" in qselect.read_text()

    stand_in(bin_dir, "qsub", "", rc=1, stderr="qsub: Unknown queue")
    with pytest.raises(SchedulerError, match="Unknown queue"):
        pbs.submit(tmp_path / "job.sh", tmp_path, "x")


def test_pbs_job_script(tmp_path: Path) -> None:
    batch = BatchSettings(scheduler="pbs", queue="workq", account="proj", nodes=2, ntasks=32, memory="64gb")
    script = prepare_job(W_TINY, w_bcc(), tmp_path, batch)
    text = script.read_text()
    for line in ("#PBS -N " + job_name(tmp_path, 0), f"#PBS -o {tmp_path.resolve() / JOB_OUTPUT}", "#PBS -j oe",
                 "#PBS -l select=2:ncpus=16:mpiprocs=16:mem=64gb", "#PBS -l walltime=01:05:00", "#PBS -q workq",
                 "#PBS -A proj", f"cd {tmp_path.resolve()}"):
        assert line in text


BJOBS = """\
5001    RUN     al1a2b3c4d-0
5002    DONE    al1a2b3c4d-1
5003    EXIT    al5e6f7a8b-0
5004    PEND    al5e6f7a8b-1"""


def test_lsf_commands_and_parsing(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    lsf = LSFScheduler()
    script = tmp_path / "job.sh"
    script.write_text("#BSUB -n 4\necho hi\n")
    bsub = stand_in(bin_dir, "bsub", "Job <5001> is submitted to queue <normal>.")
    assert lsf.submit(script, tmp_path, "al1a2b3c4d-0") == "5001"
    assert bsub.read_text().split() == ["-J", "al1a2b3c4d-0", "-cwd", str(tmp_path)]
    assert (bin_dir / "bsub.stdin").read_text() == script.read_text()  # directives are read from stdin

    stand_in(bin_dir, "bjobs", BJOBS, rc=255, stderr="Job <5099> is not found")
    assert lsf.states(["5001", "5002", "5003", "5004", "5099"]) == {
        "5001": JobState.running, "5002": JobState.finished, "5003": JobState.failed, "5004": JobState.pending,
        "5099": JobState.unknown}
    assert parse_bjobs(BJOBS)["5004"] == (JobState.pending, "al5e6f7a8b-1")
    assert lsf.find("al5e6f7a8b-1") == "5004" and lsf.find("al1a2b3c4d-1") is None  # DONE is not active


def test_lsf_job_script(tmp_path: Path) -> None:
    batch = BatchSettings(scheduler="lsf", queue="normal", account="proj", ntasks=8, walltime="00:30:30",
                          memory="4000")
    text = prepare_job(W_TINY.model_copy(update={"walltime_s": 60.0}), w_bcc(), tmp_path, batch).read_text()
    for line in ("#BSUB -J " + job_name(tmp_path, 0), "#BSUB -n 8", "#BSUB -W 0:31", '#BSUB -R "span[hosts=1]"',
                 "#BSUB -q normal", "#BSUB -P proj", "#BSUB -M 4000"):
        assert line in text


def test_every_template_renders_to_valid_bash(tmp_path: Path) -> None:
    for scheduler in ("slurm", "pbs", "lsf"):
        script = prepare_job(W_TINY, w_bcc(), tmp_path / scheduler, BatchSettings(scheduler=scheduler))
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, scheduler
