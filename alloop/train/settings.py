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

# E_i = φ + φ^1/2 + φ^1/8 + φ^1/4 + φ^3/8 + φ^3/4 + φ^7/8 + φ^2 (paper, Methods; following its ref. 47)
PAPER_FS_PARAMETERS: tuple[float, ...] = (1, 1, 1, 0.5, 1, 0.125, 1, 0.25, 1, 0.375, 1, 0.75, 1, 0.875, 1, 2)

TEMPLATE_NAME = "pacemaker/input.yaml"


class FitSettings(BaseModel):
    """How an ACE potential is fitted with pacemaker. Defaults are the paper's W settings."""

    model_config = ConfigDict(extra="forbid")

    n_functions: int = Field(72, ge=1, description="ACE basis functions per element (paper: 72 for W, 3656 for MoNbTaW)")
    nradmax_by_orders: list[int] = Field(
        default_factory=lambda: [15, 3, 2, 1], min_length=1, description="radial functions per body order (2-, 3-, ...body)"
    )
    lmax_by_orders: list[int] = Field(
        default_factory=lambda: [0, 4, 2, 0], min_length=1, description="maximum angular momentum per body order"
    )
    cutoff: float = Field(5.0, gt=0, description="Å")
    kappa: float = Field(0.01, ge=0, le=1, description="relative force weight in the loss")
    optimizer: Literal["BFGS", "L-BFGS-B"] = "BFGS"
    maxiter: int = Field(2000, ge=1, description="optimizer iterations")
    radial_basis: Literal["SBessel", "ChebExpCos", "ChebPow"] = "SBessel"
    radial_parameters: list[float] = Field(default_factory=lambda: [5.25])
    npot: Literal["FinnisSinclairShiftedScaled", "FinnisSinclair"] = "FinnisSinclairShiftedScaled"
    fs_parameters: list[float] = Field(
        default_factory=lambda: list(PAPER_FS_PARAMETERS),
        description="(prefactor, exponent) pairs of the embedding terms; their count is pacemaker's ndensity",
    )
    evaluator: Literal["tensorpot", "pyace"] = "tensorpot"
    committee: int = Field(1, ge=1, description="independently initialised fits (paper: 5); the first is the potential")
    seed: int = Field(42, description="seeds the train/test split and member k's initial coefficients (seed + k)")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of structures held out for the test metrics")
    batch_size: int = Field(100, ge=1, description="structures per tensorpot batch (memory vs speed)")
    timeout_s: float | None = Field(None, gt=0, description="give up on one pacemaker run after this long")
    extra: dict[str, Any] = Field(default_factory=dict, description="merged into the pacemaker input (experts)")

    @model_validator(mode="after")
    def _consistent(self) -> FitSettings:
        if len(self.fs_parameters) % 2:
            raise ValueError("fs_parameters must be (prefactor, exponent) pairs: an even number of values")
        if len(self.nradmax_by_orders) != len(self.lmax_by_orders):
            raise ValueError("nradmax_by_orders and lmax_by_orders must have one entry per body order each")
        return self

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
) -> dict[str, Any]:
    """The pacemaker input for committee member `member`, as a dict ready for yaml.safe_dump."""
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
    return _deep_merge(config, settings.extra)


def potential_section(settings: FitSettings, elements: list[str]) -> dict[str, Any]:
    """Just the `potential:` part, for building an untrained basis in-process. Its coefficients start at
    zero: random ones would draw from (and so disturb) numpy's global random state."""
    pot = render_input(settings, elements, "unused.pckl.gzip", None)["potential"]
    for spec in pot.get("functions", {}).values():
        if isinstance(spec, dict) and "coefs_init" in spec:
            spec["coefs_init"] = "zero"
    return pot
