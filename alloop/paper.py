"""Constants from Liu et al. (npj Comput. Mater. 2026) and its W data set, kept in one place.

The member order, RMSEs and checkpoint names are those of the paper's notebook (Kai-Liu-MSE/UQ-uMLIP,
`Pure W`), as re-packed in ../shared/data/uq_umlip_W/W_uq_umlip.npz. The RMSEs are each model's OMat24
test-set force RMSE in eV/Å, the only input of the Eq. (2) weights; they are written once, in the
built-in ensemble alloop/ensemble/builtin/paper-11.yaml, and read from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

# Checkpoint behind each model index of the W npz (`model_names[i]` starts with f"{i}-").
# Index 20 (MACE-MPA-0) is named by the notebook's folders but absent from the npz.
W_NPZ_CHECKPOINTS: MappingProxyType[int, str] = MappingProxyType(
    {
        0: "GRACE-2L-OMAT",
        1: "GRACE-2L-OAM",
        2: "eqV2-31M-OAM",
        3: "eqV2-86M-OAM",
        4: "eqV2-153M-OAM",
        5: "DPA3-v1",
        6: "DPA3-v2",
        7: "SevenNet",
        8: "eSEN-30M-OAM",
        9: "MACE-OMAT",
        10: "eqV2-31M-OMat",
        11: "eqV2-86M-OMat",
        12: "eqV2-153M-OMat",
        13: "eSEN-30M-OMat",
        14: "orb-v3-conservative-inf-omat",
        15: "orb-v3-conservative-20-omat",
        16: "orb-v3-direct-inf-omat",
        17: "orb-v3-direct-20-omat",
        18: "SevenNet-OMat",
        19: "SevenNet-OMat-2",
        20: "MACE-MPA-0",
    }
)

# The paper's 11-member ensemble (its U), most accurate first, as W npz model indices.
PAPER11_W_INDICES: tuple[int, ...] = (13, 10, 11, 19, 18, 7, 9, 15, 14, 17, 16)
PAPER11_CHECKPOINTS: tuple[str, ...] = tuple(W_NPZ_CHECKPOINTS[i] for i in PAPER11_W_INDICES)


def _paper11_rmse() -> tuple[float, ...]:
    """OMat24 force RMSE (eV/Å) of each member, in PAPER11_W_INDICES order, as the built-in ensemble
    paper-11 gives them: its YAML is the one table of the paper's RMSEs (paper-11-w-replay takes them from
    it with `rmse_from`)."""
    from alloop.ensemble.spec import resolve_ensemble

    rmse = {m.name: m.rmse for m in resolve_ensemble("paper-11", check_files=False).u_members}
    return tuple(float(rmse[name]) for name in PAPER11_CHECKPOINTS)  # type: ignore[arg-type]


PAPER11_RMSE: tuple[float, ...] = _paper11_rmse()

# Surrogate labels for configurations with U < U_c: forces from eqV2-31M-OMat, energies from
# eqV2-31M-OAM (the OMat model's energies are on another reference).
SURROGATE_FORCES_W_INDEX = 10
SURROGATE_ENERGY_W_INDEX = 2

# U_c (eV/Å) the paper adopts; with the 11-member U⁽¹⁾ it sends ~4% of W atoms to DFT.
PAPER_UC = 1.0

# Published W selection (strict U < U_c, U⁽¹⁾ of the 11 members): uMLIP-labelled configurations and
# DFT share by atoms per U_c (eV/Å). Digits as printed by the paper's notebook.
W_PUBLISHED_UMLIP_CONFIGS: MappingProxyType[float, int] = MappingProxyType(
    {0.1: 182, 0.5: 767, 1.0: 1038, 10.0: 1068, float("inf"): 1129}
)
W_PUBLISHED_DFT_ATOM_FRACTION: MappingProxyType[float, float] = MappingProxyType(
    {0.1: 0.95097, 0.5: 0.39364, 1.0: 0.042746, 10.0: 0.027535}
)


def w_npz_force_key(model_names: Sequence[str], index: int) -> str:
    """Key of model `index`'s forces in the W npz (pass the npz's `model_names`), e.g.
    `forces__10-eqV2-31-omat`."""
    return f"forces__{model_names[index]}"
