"""Fit settings and the pacemaker input they render to (templates/pacemaker/input.yaml)."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from alloop.errors import MissingFileError
from alloop.resources import template_path
from alloop.schema import unit
from alloop.train.test_sets import TestSet

# E_i = φ + φ^1/2 + φ^1/8 + φ^1/4 + φ^3/8 + φ^3/4 + φ^7/8 + φ^2 (paper, Methods; following its ref. 47)
PAPER_FS_PARAMETERS: tuple[float, ...] = (1, 1, 1, 0.5, 1, 0.125, 1, 0.25, 1, 0.375, 1, 0.75, 1, 0.875, 1, 2)

TEMPLATE_NAME = "pacemaker/input.yaml"

# The paper's two ACE bases (Methods: "72 functions (801 parameters) for W and 3656 functions (30,868
# parameters) for MoNbTaW"). `n_functions` is per element, so the MoNbTaW basis asks for 3656 / 4 = 914.
# Its radial shape is not published; this one (the W shape with 4-body nradmax 3) is the closest of those
# tried: 912 functions per element (the pool of this shape), 3648 in all and 30,732 parameters
# (tests/test_basis.py measures both presets).
BASIS_PRESETS: dict[str, dict[str, Any]] = {
    "paper-W": {"n_functions": 72, "nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 4, 2, 0]},
    "paper-MoNbTaW": {"n_functions": 914, "nradmax_by_orders": [15, 3, 3, 1], "lmax_by_orders": [0, 4, 2, 0]},
}


# Two recipes: the keys each sets unless the campaign sets them too. "safeguarded" is pacemaker's documented
# practice for a small, growing active-learning set (its `pacemaker -t` template: κ 0.3, L1/L2 and radial
# smoothness 1e-8, EnergyBasedWeightingPolicy with DElow 1, DE 1, DF 1, wlow 0.75) plus a ZBL core and
# structures far above the lowest one left out. "paper" is Liu et al.'s fit of 1129 W structures (κ 0.01,
# 2000 BFGS steps, no weighting, no core, absolute energies), which alloop sweep and the paper benchmarks use.
RECIPES: dict[str, dict[str, Any]] = {
    "safeguarded": {"kappa": 0.3, "energy_weighting": True, "regularization": 1e-8, "repulsion": True,
                    "max_energy_above_min": 10.0, "max_force": 50.0, "reference_energy": "isolated"},
    "paper": {"kappa": 0.01, "energy_weighting": False, "regularization": 0.0, "repulsion": False,
              "max_energy_above_min": None, "max_force": None, "reference_energy": "none"},
}


class FitSettings(BaseModel):
    """How an ACE potential is fitted with pacemaker. The basis defaults are the paper's W basis; the fit's
    safeguards come from `recipe`."""

    model_config = ConfigDict(extra="forbid")

    basis: Literal["paper-W", "paper-MoNbTaW"] | None = Field(
        None, description="a preset for n_functions, nradmax_by_orders and lmax_by_orders (fields given too override it)"
    )
    recipe: Literal["safeguarded", "paper"] = Field(
        "safeguarded", description="a preset for kappa, energy_weighting, regularization, repulsion, max_energy_above_min, "
        "max_force and reference_energy (fields given too override it): 'safeguarded' is pacemaker's practice for small "
        "active-learning sets, 'paper' the published W fit (kappa 0.01, no weighting, no core, absolute energies)",
    )
    energy_weighting: bool = Field(
        True, description="pacemaker's EnergyBasedWeightingPolicy: structures near the lowest energy per atom weigh most "
        "(weight 1/(ΔE + 1 eV)^2; 75 % of the weight on those within 1 eV/atom)",
    )
    max_energy_above_min: float | None = Field(
        10.0, gt=0, description="structures this far above the lowest one per atom (per-element reference removed) are "
        "left out of the fit and counted (pacemaker's DEup); short-range kinds (dimers, trimers, compressed pairs) are weighted down instead",
        json_schema_extra=unit("eV/atom"),
    )
    max_force: float | None = Field(
        50.0, gt=0, description="structures with a larger atomic force are left out of the fit and counted "
        "(pacemaker's DFup); short-range kinds are weighted down instead", json_schema_extra=unit("eV/Å"),
    )
    short_range_weight: float = Field(
        0.1, gt=0, le=1, description="weight factor of dimers, trimers and compressed pairs, which probe the repulsive wall on purpose",
    )
    repulsion: bool = Field(
        True, description="a ZBL core below r_in per element pair, so MD with the potential cannot collapse atoms: r_in is "
        "the shortest training distance of that pair, at most 0.55 x the sum of the covalent radii (W-W: 1.78 Å), so "
        "the core never reaches the distances the data describe",
    )
    regularization: float = Field(
        1e-8, ge=0, description="L1 and L2 weight on the coefficients and on the radial functions' smoothness (w0-w2_rad)",
    )
    reference_energy: Literal["isolated", "none"] = Field(
        "isolated", description="'isolated': the label member's energy of each element's isolated atom is taken off "
        "before fitting (pacemaker's reference_energy, kept in the potential's metadata and added back by alloop's "
        "predictions), so the basis learns binding energies, which vanish where ACE's do, without neighbours; "
        "'none' (or a label source that cannot compute an isolated atom): absolute energies",
    )
    warm_start: bool = Field(
        True, description="each iteration's fit starts from the previous iteration's potential when the basis is the "
        "same (pacemaker's potential file); false: every fit starts from random coefficients",
    )
    warm_maxiter: int | None = Field(
        None, ge=1, description="optimizer iterations of a warm-started fit (default: maxiter)",
    )
    final_maxiter: int | None = Field(
        None, ge=0, description="optimizer iterations of the campaign's final fit: once it has converged or reached "
        "max_iterations, the last potential is fitted on, on the same training data, and stored as the final potential "
        "that `alloop run` and `alloop status` name (default: 2 x maxiter; 0: no final fit, the last iteration's "
        "potential is the result)",
    )
    n_functions: int = Field(
        72, ge=1, description="ACE basis functions per element (pacemaker's number_of_functions_per_element): "
        "a basis for k elements has up to k x n_functions in all (paper: 72 for W, 914 x 4 = 3656 for MoNbTaW)",
    )
    nradmax_by_orders: list[int] = Field(
        default_factory=lambda: [15, 3, 2, 1], min_length=1, description="radial functions per body order (2-, 3-, ...body)"
    )
    lmax_by_orders: list[int] = Field(
        default_factory=lambda: [0, 4, 2, 0], min_length=1, description="maximum angular momentum per body order"
    )
    cutoff: float = Field(5.0, gt=0, description="radial cutoff of the ACE basis; generation keeps vacuum gaps and "
                          "defect cells wider than it", json_schema_extra=unit("Å"))
    kappa: float = Field(0.3, ge=0, le=1, description="relative force weight in the loss (paper: 0.01)")
    optimizer: Literal["BFGS", "L-BFGS-B"] = Field("BFGS", description="pacemaker's scipy optimizer")
    maxiter: int = Field(2000, ge=1, description="optimizer iterations")
    radial_basis: Literal["SBessel", "ChebExpCos", "ChebPow"] = Field(
        "SBessel", description="radial basis functions (pacemaker's radbase)")
    radial_parameters: list[float] = Field(
        default_factory=lambda: [5.25], description="parameters of the radial basis (pacemaker's radparameters)")
    npot: Literal["FinnisSinclairShiftedScaled", "FinnisSinclair"] = Field(
        "FinnisSinclairShiftedScaled", description="embedding function of the densities (pacemaker's npot)")
    fs_parameters: list[float] = Field(
        default_factory=lambda: list(PAPER_FS_PARAMETERS),
        description="(prefactor, exponent) pairs of the embedding terms; their count is pacemaker's ndensity",
    )
    evaluator: Literal["tensorpot", "pyace"] = Field(
        "tensorpot", description="pacemaker's backend: tensorpot (TensorFlow, batched) or pyace")
    committee: int = Field(1, ge=1, description="independently initialised fits (paper: 5); the first is the potential")
    seed: int = Field(42, description="seeds the train/test split and member k's initial coefficients (seed + k)")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of structures held out for the test metrics")
    batch_size: int = Field(100, ge=1, description="structures per tensorpot batch (memory vs speed)")
    timeout_s: float | None = Field(None, gt=0, description="give up on one pacemaker run after this long",
                                    json_schema_extra=unit("s"))
    extra: dict[str, Any] = Field(default_factory=dict, description="merged into the pacemaker input (experts)")
    test_sets: list[TestSet] = Field(
        default_factory=list, description="labelled DFT the campaign never trains on: every potential is scored on each "
        "after its fit (energy RMSE raw and without the mean offset, force RMSE), in the log, `alloop status` and the "
        "report's learning curve; not part of the fit (adding one refits nothing)",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = RECIPES[data.get("recipe") if data.get("recipe") in RECIPES else "safeguarded"] | data
            if data.get("basis") in BASIS_PRESETS:
                data = BASIS_PRESETS[data["basis"]] | data
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FitSettings:
        if len(self.fs_parameters) % 2:
            raise ValueError("fs_parameters must be (prefactor, exponent) pairs: an even number of values")
        if len(self.nradmax_by_orders) != len(self.lmax_by_orders):
            raise ValueError("nradmax_by_orders and lmax_by_orders must have one entry per body order each")
        return self

    def final_fit(self) -> FitSettings | None:
        """The settings of the campaign's final fit (warm-started, final_maxiter iterations), or None without one."""
        n = 2 * self.maxiter if self.final_maxiter is None else self.final_maxiter
        return None if n == 0 else self.model_copy(update={"warm_start": True, "warm_maxiter": n})

    @property
    def ndensity(self) -> int:
        return len(self.fs_parameters) // 2


def pacemaker_template() -> Path:
    path = template_path(TEMPLATE_NAME)
    if not path.is_file():
        raise MissingFileError(path, "pacemaker input template", "restore templates/pacemaker/input.yaml, or reinstall alloop")
    return path


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render_input(
    settings: FitSettings,
    elements: list[str],
    train_file: str | Path,
    test_file: str | Path | None,
    member: int = 0,
    *,
    r_in: float | None = None,
    reference_energy: dict[str, float] | None = None,
    initial_potential: str | Path | None = None,
) -> dict[str, Any]:
    """The pacemaker input for committee member `member`, as a dict ready for yaml.safe_dump.

    The data-dependent parts of the recipe come from the fit: `r_in` (Å) where the ZBL core takes over,
    `reference_energy` (eV per atom of each element) taken off the energies, and `initial_potential`, a
    potential of the same basis whose coefficients the fit starts from (a warm start)."""
    values = {
        "seed": settings.seed + member,
        "member": member,
        "train_file": str(train_file),
        "test_file": None if test_file is None else str(test_file),
        "elements": sorted(elements),
        "npot": settings.npot,
        "fs_parameters": settings.fs_parameters,
        "ndensity": settings.ndensity,
        "radial_basis": settings.radial_basis,
        "radial_parameters": settings.radial_parameters,
        "cutoff": settings.cutoff,
        "n_functions": settings.n_functions,
        "nradmax_by_orders": settings.nradmax_by_orders,
        "lmax_by_orders": settings.lmax_by_orders,
        "kappa": settings.kappa,
        "optimizer": settings.optimizer,
        "maxiter": settings.maxiter,
        "evaluator": settings.evaluator,
        "batch_size": settings.batch_size,
    }
    text = string.Template(pacemaker_template().read_text()).substitute({k: json.dumps(v) for k, v in values.items()})
    config = yaml.safe_load(text)
    if test_file is None:
        config["data"].pop("test_filename", None)
    _add_safeguards(config, settings, r_in, reference_energy)
    if initial_potential is not None:
        # a potential file as the whole `potential` section: pacemaker fits on from its coefficients
        config["potential"] = str(initial_potential)
        config["fit"]["maxiter"] = settings.warm_maxiter or settings.maxiter
    return _deep_merge(config, settings.extra)


def _add_safeguards(config: dict[str, Any], settings: FitSettings, r_in: float | None,
                    reference_energy: dict[str, float] | None) -> None:
    loss = config["fit"]["loss"]
    if settings.regularization > 0:
        for key in ("L1_coeffs", "L2_coeffs", "w0_rad", "w1_rad", "w2_rad"):
            loss[key] = settings.regularization
    if settings.energy_weighting:
        # alloop leaves out (and counts) what lies above its own bounds, so pacemaker's are open
        config["fit"]["weighting"] = {"type": "EnergyBasedWeightingPolicy", "DElow": 1.0, "DEup": 1.0e6, "DE": 1.0,
                                      "DF": 1.0, "wlow": 0.75, "energy": "convex_hull", "reftype": "all",
                                      "seed": settings.seed}
    if settings.repulsion and r_in is not None:
        # what pacemaker's `repulsion: auto` sets (pyace.generalfit.setup_zbl_inner_core_repulsion), at our r_in
        config["potential"]["bonds"]["ALL"].update({"inner_cutoff_type": "zbl", "r_in": round(float(r_in), 4),
                                                    "delta_in": 0.1, "core-repulsion": [1.0, 1.0]})
        config["potential"]["embeddings"]["ALL"].update({"rho_core_cut": 1.0, "drho_core_cut": 1.0})
    if reference_energy:
        config["data"]["reference_energy"] = {el: float(v) for el, v in sorted(reference_energy.items())}


def potential_section(settings: FitSettings, elements: list[str]) -> dict[str, Any]:
    """Just the `potential:` part, for building an untrained basis in-process. Its coefficients start at
    zero: random ones would draw from (and so disturb) numpy's global random state."""
    pot = render_input(settings, elements, "unused.pckl.gzip", None)["potential"]
    for spec in pot.get("functions", {}).values():
        if isinstance(spec, dict) and "coefs_init" in spec:
            spec["coefs_init"] = "zero"
    return pot
