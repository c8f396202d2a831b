"""Shared fixtures. The reference data lives in ../shared beside the clone (never copied in).

Expensive things are started once per session and shared:
- `slurm_cluster`: the one private SLURM (tests/slurm_cluster.py) of the session, with the partitions every
  SLURM test needs; `slurm` is the same cluster for one test, with its leftover jobs cancelled afterwards.
  Every test that uses it is marked `slurm`, and every `slurm` test `slow`: `-m "not slow"` starts no SLURM.
- `tiny_reference`: the undisturbed run of the tiny GPAW campaign (tests/campaigns.py: 2 iterations, γ-driven
  MD from iteration 0's potential on) that the end-to-end, interruption and report tests compare with. Its
  candidates depend on iteration 0's fit, which a killed fit reruns from its input to the same coefficients
  (pacemaker with a fixed seed is deterministic on CPU), so one kind serves the tests that stop a fit too.
  Its directory is read, never written: a test that runs or reports on the campaign does so in a copy or
  writes elsewhere (`alloop report -o`).
- `tiny_ace_fit`: one real pacemaker fit (8 functions, 15 steps, the 2-12-atom W cells; ~30 s of TensorFlow
  start-up alone) for every test that needs a freshly fitted potential rather than a particular one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ALLOOP_SHARED", REPO.parent / "shared"))

# The session SLURM's partitions: the first is the default (tests/test_batch.py, tests/test_cluster.py);
# tests/test_campaign_slurm.py puts its Dask workers in one and its DFT jobs in the other.
SLURM_PARTITIONS = ("alloop", "workers", "dft")
SLURM_FIXTURES = ("slurm_cluster", "slurm")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that uses the session SLURM is a `slurm` test even if it forgot the marker, and every `slurm`
    test is `slow`, so that the quick loop (`-m "not slow"`) never starts SLURM."""
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in SLURM_FIXTURES) and item.get_closest_marker("slurm") is None:
            item.add_marker(pytest.mark.slurm)
        if item.get_closest_marker("slurm") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def slurm_cluster():
    """The session's private SLURM on localhost (fails without root or the packages). 4 slots on the
    2-core machine: a Dask worker job, DFT jobs, and orphaned workers of killed controllers side by side."""
    from tests.slurm_cluster import local_slurm

    with local_slurm(cpus=4, partitions=SLURM_PARTITIONS) as cluster:
        yield cluster


@pytest.fixture
def slurm(slurm_cluster) -> Iterator:
    """The session SLURM for one test; the jobs it leaves in the queue are cancelled after it."""
    yield slurm_cluster
    slurm_cluster.run("scancel", "--user", "root")


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory) -> tuple[Path, str]:
    """(campaign file, `alloop run` output) of the tiny campaign, run once to its end."""
    from tests.campaigns import run_to_end, tiny_campaign

    campaign = tiny_campaign(tmp_path_factory.mktemp("tiny-reference"))
    return campaign, run_to_end(campaign)


@pytest.fixture(scope="session")
def tiny_ace_fit(tmp_path_factory, shared_data):
    """(FitResult, training frame, FitSettings) of a tiny real ACE fit; read it, never refit into its folder
    with other data (a rerun with the same data and settings reuses it)."""
    import numpy as np

    from alloop.train import FitSettings, fit_ace
    from tests.test_train import SMALL, w_frame

    with np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz") as npz:
        frame = w_frame(npz, SMALL)
    settings = FitSettings(n_functions=8, maxiter=15, test_fraction=0)
    return fit_ace(frame, settings, tmp_path_factory.mktemp("tiny-ace-fit"), ["W"]), frame, settings


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; its absence fails the tests that need it (set ALLOOP_SHARED)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.fail(f"reference data not found at {path}: put the shared folder beside the checkout or set ALLOOP_SHARED")
    return path


@pytest.fixture(scope="session")
def w_npz(shared_data: Path):
    import numpy as np

    return np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
