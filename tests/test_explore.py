"""γ-driven MD exploration with a real W ACE potential from the paper and an active set built
here from a small bulk-only slice of the W data (so defects and surfaces are extrapolative)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.geometry import find_mic
from pydantic import ValidationError

from alloop.errors import ConfigError, MissingFileError
from alloop.explore import ExploreSettings, explore
from alloop.explore.gamma import Band, cap_candidates, classify
from alloop.explore.lammps_engine import lammps_input
from alloop.generate import GeneratorSettings, KindCounts, generate_candidates, starting_structures

# bcc W at the DFT volume of the training slice (16.23 Å^3/atom)
W_A = 3.185


@pytest.fixture(scope="module")
def ace(shared_data: Path, w_npz, tmp_path_factory) -> tuple[Path, Path]:
    """(potential.yaml, potential.asi): the paper's 100%-DFT W potential and an active set from
    24 near-equilibrium bulk configurations (2- and 54-atom cells)."""
    import pyace  # noqa: F401
    tmp = tmp_path_factory.mktemp("ace")
    d = {k: w_npz[k] for k in ("n_atoms", "offsets", "numbers", "positions", "cells", "energy_dft_total", "forces_dft")}
    n, off = d["n_atoms"], d["offsets"]
    rows = []
    for i in range(1026):  # the "general" configurations
        if n[i] not in (2, 54):
            continue
        s = slice(off[i], off[i + 1])
        atoms = Atoms(numbers=d["numbers"][s], positions=d["positions"][s], cell=d["cells"][i], pbc=True)
        if abs(atoms.get_volume() / len(atoms) - 16.23) < 0.05 and sum(len(r["ase_atoms"]) == n[i] for r in rows) < 12:
            e = float(d["energy_dft_total"][i])
            rows.append({"ase_atoms": atoms, "energy": e, "energy_corrected": e, "forces": d["forces_dft"][s]})
    pd.DataFrame(rows).to_pickle(tmp / "train.pckl.gzip", compression="gzip")
    potential = tmp / "potential.yaml"
    potential.write_bytes((shared_data / "uq_umlip_W" / "ace_potentials" / "0_ensemble_potential_0.yaml").read_bytes())
    pace_activeset = Path(sys.executable).with_name("pace_activeset")
    subprocess.run(
        [str(pace_activeset), "-d", "train.pckl.gzip", potential.name], cwd=tmp, check=True, capture_output=True
    )
    return potential, tmp / "potential.asi"


@pytest.fixture(scope="module")
def starts() -> list[Atoms]:
    return starting_structures(["W"], GeneratorSettings(lattice_constant=W_A), np.random.default_rng(0))


def _bulk(starts):
    return [a for a in starts if a.info["kind"] == "bulk"]


def test_bulk_w_at_300k_stays_interpolative(ace, starts):
    settings = ExploreSettings(temperature=300, steps=300, sample_interval=10)
    result = explore(*ace, _bulk(starts), settings)

    (traj,) = result.trajectories
    assert (traj.steps_run, traj.halted, traj.reason) == (300, False, "completed")
    assert len(result.gamma_max_all) == 31  # steps 0, 10, ..., 300
    assert result.gamma_max_all.max() < settings.gamma_lo
    assert result.candidates == []


def test_hot_md_finds_candidates_and_halts(ace, starts):
    settings = ExploreSettings(temperature=8000, steps=300, max_candidates=50)
    result = explore(*ace, starts[:2], settings)  # bulk and vacancy

    assert any(t.halted and t.reason == "gamma_halt" for t in result.trajectories)
    assert result.candidates
    for cand in result.candidates:  # only the trust window: the untrusted frames and the halting one are counted
        assert settings.gamma_lo < cand.info["gamma_max"] <= settings.gamma_hi
        assert cand.info["source"] == "md"
        assert cand.info["start_kind"] in {"bulk", "vacancy"}
        assert cand.info["gamma_band"] == "extrapolation"
        assert cand.pbc.all() and cand.calc is None
        assert cand.arrays["gamma"].max() == pytest.approx(cand.info["gamma_max"])
    above = int(np.sum(result.gamma_max_all > settings.gamma_hi))
    assert result.n_above == above >= result.n_halted >= 1  # every halting frame is above the window


def test_tensile_strain_drives_the_bulk_out_of_the_training_domain(ace, starts):
    settings = ExploreSettings(temperature=300, steps=500, strain_rate=20.0, strain_axis="x")
    result = explore(*ace, _bulk(starts), settings)

    (traj,) = result.trajectories
    assert traj.halted and traj.steps_run < 500
    start_x = _bulk(starts)[0].cell[0, 0]
    stretched = max(result.candidates, key=lambda a: a.info["md_step"])
    assert stretched.cell[0, 0] > start_x * 1.01
    assert stretched.cell[1, 1] == pytest.approx(_bulk(starts)[0].cell[1, 1])


def test_candidates_have_higher_gamma_than_random_frames(ace, starts):
    # this active set knows only bulk at one volume: at 3000 K most frames leave the default window, so it is wide here
    result = explore(*ace, starts[:2], ExploreSettings(temperature=3000, steps=300, gamma_hi=50, gamma_halt=100))
    cand_gamma = np.array([c.info["gamma_max"] for c in result.candidates])
    random_frames = np.random.default_rng(0).choice(result.gamma_max_all, size=len(cand_gamma))
    assert len(cand_gamma) >= 3
    assert cand_gamma.mean() > random_frames.mean()
    assert cand_gamma.min() > ExploreSettings().gamma_lo


def test_structures_unlike_the_training_set_halt_at_once_and_are_counted_not_returned(ace, starts):
    # the active set saw only bulk: the surface slab is far outside it before any MD step
    slab = [a for a in starts if a.info["kind"] == "surface"][:1]
    result = explore(*ace, slab, ExploreSettings(steps=50))
    (traj,) = result.trajectories
    assert traj.halted and traj.steps_run == 0
    assert result.candidates == [] and traj.n_above == 1


def test_npt_follows_the_target_pressure(ace, starts):
    bulk = _bulk(starts)
    settings = ExploreSettings(ensemble="npt", pressure=30.0, barostat_time=100, steps=200, gamma_lo=0.5, gamma_hi=1e3, gamma_halt=1e4)
    result = explore(*ace, bulk, settings)
    volumes = [c.get_volume() for c in result.candidates if c.info["md_step"] >= 100]
    assert volumes and max(volumes) < bulk[0].get_volume() * 0.98


def test_same_seed_reproduces_the_run(ace, starts):
    settings = ExploreSettings(temperature=3000, steps=100, seed=3)
    a = explore(*ace, starts[:2], settings)
    b = explore(*ace, starts[:2], settings)
    c = explore(*ace, starts[:2], settings.model_copy(update={"seed": 4}))
    np.testing.assert_array_equal(a.gamma_max_all, b.gamma_max_all)
    assert not np.array_equal(a.gamma_max_all, c.gamma_max_all)


def test_inputs_are_checked_before_any_md(ace, starts, tmp_path):
    with pytest.raises(MissingFileError, match="active set"):
        explore(ace[0], tmp_path / "missing.asi", starts[:1], ExploreSettings())
    mo = starts[0].copy()
    mo.symbols[0] = "Mo"
    with pytest.raises(ConfigError, match="Mo"):
        explore(*ace, [mo], ExploreSettings())


def test_gamma_bands_and_candidate_cap():
    s = ExploreSettings()
    assert [classify(g, s) for g in (1.0, 1.1, 2.0, 5.0, 5.1, 25.0, 26.0)] == [
        Band.INTERPOLATION, Band.INTERPOLATION, Band.EXTRAPOLATION, Band.EXTRAPOLATION,
        Band.HIGH, Band.HIGH, Band.HALT,
    ]  # fmt: skip

    def frames(traj, n):
        return [Atoms("W", info={"md_step": 10 * k, "traj": traj}) for k in range(n)]

    # the cap is shared in turns (5 = 2 + 1 + 2), and each trajectory's share is spread over its run, not its highest γ
    capped = cap_candidates([frames(0, 9), frames(1, 1), frames(2, 2)], 5)
    assert [(a.info["traj"], a.info["md_step"]) for a in capped] == [(0, 0), (0, 80), (1, 0), (2, 0), (2, 10)]
    capped = cap_candidates([frames(0, 9)], 3)
    assert [a.info["md_step"] for a in capped] == [0, 40, 80]


@pytest.mark.parametrize(
    "bad",
    [
        {"gamma_lo": 6.0},  # above gamma_hi
        {"engine": "lammps"},  # no lammps_command
        {"ensemble": "npt", "strain_rate": 1.0},
        {"temprature": 300},
    ],
)
def test_settings_reject_inconsistent_values(bad):
    with pytest.raises(ValidationError):
        ExploreSettings(**bad)


# --- LAMMPS engine: input script, a missing binary, and a stand-in binary that writes real-format output


def test_lammps_input_follows_the_pacemaker_recipe():
    s = ExploreSettings(engine="lammps", lammps_command="lmp", sample_interval=20, strain_rate=0.5, strain_axis="xyz")
    text = lammps_input(s, ["Mo", "W"], 1234, "potential.yaml", "potential.asi")
    assert "pair_style pace/extrapolation" in text
    assert "pair_coeff * * potential.yaml potential.asi Mo W" in text
    assert "fix pace_gamma all pair 20 pace/extrapolation gamma 1" in text
    assert "fix halt_gamma all halt 20 v_max_pace_gamma > 25.0 error continue" in text
    assert "x erate 0.5 y erate 0.5 z erate 0.5 remap x" in text
    assert "timestep 0.001" in text


def test_lammps_engine_needs_the_binary(ace, starts):
    s = ExploreSettings(engine="lammps", lammps_command="lmp_that_does_not_exist -k on")
    with pytest.raises(MissingFileError, match="ML-PACE"):
        explore(*ace, starts[:1], s)


FAKE_LMP = """\
#!{python}
# Stands in for LAMMPS: echoes structure.data as dump frames with the γ series from $FAKE_GAMMAS.
import os, re, sys
inp = open(sys.argv[sys.argv.index("-in") + 1]).read()
n = int(re.search(r"pair (\\d+) pace/extrapolation", inp).group(1))
lo = float(re.search(r"c_max_pace_gamma <= ([0-9.]+)", inp).group(1))
lines = open("structure.data").read().splitlines()
box = {{}}
for ln in lines:
    parts = ln.split()
    if ln.endswith(("xlo xhi", "ylo yhi", "zlo zhi")):
        box[parts[2][0]] = (float(parts[0]), float(parts[1]))
    if ln.endswith("xy xz yz"):
        box["tilt"] = tuple(float(p) for p in parts[:3])
xy, xz, yz = box.get("tilt", (0.0, 0.0, 0.0))
start = next(i for i, ln in enumerate(lines) if ln.startswith("Atoms"))
atoms = [ln.split() for ln in lines[start + 1:] if len(ln.split()) == 5]
bounds = [
    (box["x"][0] + min(0, xy, xz, xy + xz), box["x"][1] + max(0, xy, xz, xy + xz), xy),
    (box["y"][0] + min(0, yz), box["y"][1] + max(0, yz), xz),
    (box["z"][0], box["z"][1], yz),
]
gammas = [float(g) for g in os.environ["FAKE_GAMMAS"].split(",")]
with open("gamma.txt", "w") as f, open("candidates.dump", "w") as d:
    f.write("# Fix print output for fix gamma_log\\n")
    for k, g in enumerate(gammas, 1):
        f.write(f"{{k * n}} {{g}}\\n")
        if g <= lo:
            continue
        d.write(f"ITEM: TIMESTEP\\n{{k * n}}\\nITEM: NUMBER OF ATOMS\\n{{len(atoms)}}\\n")
        d.write("ITEM: BOX BOUNDS xy xz yz pp pp pp\\n")
        d.writelines(f"{{lo_}} {{hi}} {{t}}\\n" for lo_, hi, t in bounds)
        d.write("ITEM: ATOMS id type x y z f_pace_gamma\\n")
        for j, a in enumerate(reversed(atoms)):  # LAMMPS order is arbitrary without dump_modify sort
            d.write(" ".join(a) + f" {{g if j == 0 else g / 2}}\\n")
"""


def test_lammps_engine_reads_gamma_log_and_dump(ace, tmp_path, monkeypatch):
    lmp = tmp_path / "fake_lmp"
    lmp.write_text(FAKE_LMP.format(python=sys.executable))
    lmp.chmod(0o755)
    monkeypatch.setenv("FAKE_GAMMAS", "0.5,2.0,7.0,30.0,1.0")
    # a sheared cell, so that the LAMMPS frame is rotated and must be rotated back
    counts = KindCounts(**{k: int(k == "strained_bulk") for k in KindCounts.model_fields})
    settings = GeneratorSettings(lattice_constant=W_A, counts=counts)
    (start,) = generate_candidates(["W"], settings, np.random.default_rng(0))
    s = ExploreSettings(engine="lammps", lammps_command=str(lmp), sample_interval=10, steps=50)

    result = explore(*ace, [start], s, workdir=tmp_path / "runs")

    np.testing.assert_allclose(result.gamma_max_all, [0.5, 2.0, 7.0, 30.0])  # stopped at the halt
    (traj,) = result.trajectories
    assert (traj.steps_run, traj.halted) == (40, True)
    assert [c.info["gamma_band"] for c in result.candidates] == ["extrapolation"]  # 2.0; 7.0 and the halting 30.0 are counted
    assert traj.n_above == 2
    for cand in result.candidates:
        np.testing.assert_allclose(cand.cell, start.cell, atol=1e-6)
        shift, _ = find_mic(cand.positions - start.positions, start.cell)
        np.testing.assert_allclose(shift, 0.0, atol=1e-5)
        assert cand.arrays["gamma"].max() == cand.info["gamma_max"]
    assert (tmp_path / "runs" / "traj_0000" / "in.lammps").is_file()


def test_the_exploration_schedule_is_indexed_by_iteration_and_its_last_stage_repeats():
    s = ExploreSettings(temperature=1200, steps=200)
    # default: a ladder from room temperature up to the campaign's target, one stage per exploring iteration
    assert [s.stage_of(i).temperature for i in (1, 2, 3, 4, 9)] == [300.0, 600.0, 1200.0, 1200.0, 1200.0]
    staged = ExploreSettings(temperature=1200, steps=200, stages=[
        {"temperature": 500}, {"temperature": 900, "ensemble": "npt", "pressure": 5.0, "start_kinds": ["surface"]}])
    first, second = staged.stage_of(1), staged.stage_of(2)
    assert (first.temperature, first.ensemble, first.steps, first.start_kinds) == (500, "nvt", 200, None)
    assert (second.temperature, second.ensemble, second.pressure, second.start_kinds) == (900, "npt", 5.0, ["surface"])
    assert staged.stage_of(7) == second
    assert ExploreSettings(temperature=1200, stages=[]).stage_of(3).temperature == 1200  # [] turns the ladder off
    with pytest.raises(ValidationError):
        ExploreSettings(stages=[{"temprature": 500}])


def test_the_pool_says_what_its_md_found_and_a_preview_runs_none(ace):
    from alloop.explore.pool import candidate_pool

    gen = GeneratorSettings(lattice_constant=W_A, counts=KindCounts(strained_bulk=1, rattled_bulk=0, vacancy=0, interstitial=0,
                                                                    surface=0, dimer=0, compressed=0))
    md = ExploreSettings(temperature=3000, steps=200, sample_interval=10, max_candidates=5, gamma_hi=20, stages=[])
    pool = candidate_pool(["W"], gen, md, tuple(map(str, ace)), seed=0, iteration=1, stream=1)
    ex = pool.exploration
    assert ex is not None and (ex.temperature, ex.steps) == (3000, 200)
    assert ex.window > 0 and ex.window == sum(a.info["kind"].startswith("md:") for a in pool.candidates) == len(pool.candidates) - 1
    assert ex.halted <= ex.trajectories
    preview = candidate_pool(["W"], gen, md, tuple(map(str, ace)), seed=0, iteration=1, stream=1, explore=False)
    assert preview.exploration is None and [a.info["kind"] for a in preview.candidates] == ["strained_bulk"]
