"""MD through ASE with pyace's PyACECalculator: γ comes with every force call, so the halt test
runs every step at no extra cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units

from alloop.explore.gamma import TrajectoryRecorder
from alloop.explore.settings import ExploreSettings


def load_calculator(potential_yaml: Path, active_set_asi: Path):
    """PyACECalculator with the active set loaded, so that results["gamma"] holds per-atom γ."""
    from pyace import PyACECalculator

    calc = PyACECalculator(str(potential_yaml))
    calc.set_active_set(str(active_set_asi))
    return calc


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at `temperature` with zero total momentum."""
    masses = atoms.get_masses()[:, None]
    p = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * temperature)
    if len(atoms) > 1:
        p -= masses * (p.sum(axis=0) / masses.sum())
    atoms.set_momenta(p)


def _integrator(atoms: Atoms, s: ExploreSettings, rng: np.random.Generator):
    dt = s.timestep * units.fs
    if s.ensemble == "nvt":
        from ase.md.langevin import Langevin

        # fixcm=False: the centre-of-mass correction is deprecated in ASE and a drifting centre of
        # mass does not change any periodic configuration
        return Langevin(
            atoms, dt, temperature_K=s.temperature, friction=1.0 / (s.thermostat_time * units.fs), fixcm=False, rng=rng
        )
    from ase.md.nptberendsen import NPTBerendsen

    return NPTBerendsen(
        atoms,
        dt,
        temperature_K=s.temperature,
        pressure_au=s.pressure * units.GPa,
        taut=s.thermostat_time * units.fs,
        taup=s.barostat_time * units.fs,
        compressibility_au=s.compressibility / units.GPa,
    )


def run_trajectory(calc, start: Atoms, s: ExploreSettings, rng: np.random.Generator, rec: TrajectoryRecorder) -> None:
    atoms = Atoms(numbers=start.numbers, positions=start.positions, cell=start.cell, pbc=start.pbc)
    atoms.calc = calc
    thermalize(atoms, s.temperature, rng)
    dyn = _integrator(atoms, s, rng)
    cell0 = np.array(atoms.cell)
    axis = np.array([ax in s.strain_axis for ax in "xyz"], dtype=float)
    for step, _ in enumerate(dyn.irun(s.steps)):
        atoms.get_potential_energy()  # no-op unless the cell moved: makes sure results match atoms
        gamma = calc.results["gamma"]
        gamma_max = float(gamma.max())
        if (step % s.sample_interval == 0 or gamma_max > s.gamma_halt) and rec.record(step, gamma_max, atoms, gamma):
            return
        if s.strain_rate and step < s.steps:
            t_ps = (step + 1) * s.timestep * 1e-3
            atoms.set_cell(cell0 * (1.0 + axis * s.strain_rate * t_ps)[None, :], scale_atoms=True)
    rec.steps_run = s.steps
