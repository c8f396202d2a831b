"""Child-process entry point: `python -m alloop.label.gpaw_run <workdir>`.

Reads atoms.json and gpaw_input.json, runs GPAW once and writes gpaw_output.json on success or
gpaw_error.json (kind, reason, retryable) on a failure it can describe. Anything worse (a segfault,
the OOM killer) leaves neither, and the parent reports the exit status.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from alloop.atomic import write_json_atomic
from alloop.label.base import load_atoms
from alloop.label.gpaw import ERROR_FILE, INPUT_FILE, LOG_FILE, OUTPUT_FILE


def run(workdir: Path) -> int:
    atoms = load_atoms(workdir)
    spec = json.loads((workdir / INPUT_FILE).read_text())
    import gpaw
    from gpaw import GPAW, KohnShamConvergenceError

    t0 = time.perf_counter()
    calc = GPAW(**spec["parameters"], txt=str(workdir / LOG_FILE))
    atoms.calc = calc
    try:
        free_energy = atoms.get_potential_energy(force_consistent=True)
        forces = atoms.get_forces()
        stress = atoms.get_stress(voigt=True) if spec["compute_stress"] else None
    except KohnShamConvergenceError as exc:
        detail = f" ({exc})" if str(exc) else ""
        write_json_atomic(workdir / ERROR_FILE, {
            "kind": "scf", "retryable": True,
            "reason": f"GPAW SCF not converged within maxiter = {spec['parameters']['maxiter']}{detail}; "
                      f"see {LOG_FILE}"})
        return 1
    except Exception as exc:
        text = str(exc)
        missing = "Could not find required" in text
        write_json_atomic(workdir / ERROR_FILE, {
            "kind": "missing_setup" if missing else "crash", "retryable": False, "path": text,
            "reason": f"GPAW failed: {type(exc).__name__}: {text}\n{traceback.format_exc(limit=4)}"})
        return 1
    scf = getattr(getattr(calc, "dft", None), "scf_loop", None)
    write_json_atomic(workdir / OUTPUT_FILE, {
        "free_energy": float(free_energy),
        "energy_sigma0": float(atoms.get_potential_energy()),
        "forces": forces.tolist(),
        "stress": None if stress is None else stress.tolist(),
        "n_scf": getattr(scf, "niter", None),
        "kpts": spec["parameters"]["kpts"]["size"],
        "wall_s": time.perf_counter() - t0,
        "gpaw_version": gpaw.__version__,
    })
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
