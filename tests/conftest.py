"""Shared fixtures. The reference data lives in ../shared beside the clone (never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ALLOOP_SHARED", REPO.parent / "shared"))


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
