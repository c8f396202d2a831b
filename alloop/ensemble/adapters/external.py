"""uMLIP families whose weights do not ship in their package (fairchem, MACE, Orb, MatterSim, GRACE,
NequIP, DeePMD): each loads a local checkpoint into the library's own ASE calculator and runs one
structure per call. Their packages are not installed with alloop and often clash with each other
(torch, e3nn pins): give such a member `python:` to run it in its own environment.

`spec.options` are passed to the calculator (or the loader) as keyword arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from alloop.ensemble.members import CalculatorMember, Member
from alloop.ensemble.spec import MemberSpec
from alloop.errors import MemberError


def load_fairchem(spec: MemberSpec, device: str) -> Member:
    """fairchem-core >= 2: an inference checkpoint (UMA, eSEN) through load_predict_unit and
    FAIRChemCalculator, `task` naming the dataset head (omat); it may be left out for a single-dataset
    checkpoint. fairchem-core < 2 (eqV2 checkpoints): OCPCalculator."""
    import fairchem.core as fc

    options: dict[str, Any] = dict(spec.options)
    if hasattr(fc, "FAIRChemCalculator"):
        from fairchem.core.units.mlip_unit import load_predict_unit

        # fairchem's default settings torch.compile the model (minutes per new system size on CPU)
        # and merge MOLE experts for one fixed composition; an ensemble scores varied structures.
        settings = options.pop("inference_settings", "batch")
        predictor = load_predict_unit(spec.checkpoint, inference_settings=settings, device=device)
        calc = fc.FAIRChemCalculator(predictor, task_name=spec.task, **options)
    else:
        if spec.task is not None:
            raise MemberError(
                f"member '{spec.name}': this fairchem-core ({getattr(fc, '__version__', '< 2')}) has no "
                f"UMA tasks (task '{spec.task}' given); UMA/eSEN inference checkpoints need fairchem-core >= 2"
            )
        calc = fc.OCPCalculator(checkpoint_path=spec.checkpoint, cpu=device == "cpu", **options)
    return CalculatorMember(spec, device, calc)


def load_mace(spec: MemberSpec, device: str) -> Member:
    from mace.calculators import MACECalculator

    kwargs: dict[str, Any] = {"default_dtype": "float64", **spec.options}
    if spec.task is not None:
        kwargs["head"] = spec.task
    return CalculatorMember(spec, device, MACECalculator(model_paths=spec.checkpoint, device=device, **kwargs))


class OrbMember(CalculatorMember):
    """Orb v3 also exposes its confidence head (the paper's single-model baseline, Fig. 2d) as the
    per-structure extra `orb_confidence`: the largest expected per-atom force error (eV/Å) over the
    structure's atoms, from the head's binned error distribution."""

    def _extras(self, calculator: Any, atoms: Atoms) -> dict[str, float]:
        probs = calculator.results.get("confidence")
        if probs is None:
            return {}
        probs = np.asarray(probs, dtype=np.float64).reshape(len(atoms), -1)
        head = _orb_model(calculator).heads["confidence"]
        edges = np.asarray(head.bin_edges.detach().cpu(), dtype=np.float64)
        centres = 0.5 * (edges[1:] + edges[:-1])
        return {"orb_confidence": float((probs @ centres).max())}


def _orb_model(calculator: Any) -> Any:
    model = calculator.model
    return getattr(model, "xc_model", model)  # D3-wrapped models keep the forcefield in xc_model


def load_orb(spec: MemberSpec, device: str) -> Member:
    from orb_models.forcefield import pretrained

    try:
        from orb_models.forcefield.calculator import ORBCalculator
    except ImportError:  # newer orb-models moved it
        from orb_models.forcefield.inference.calculator import ORBCalculator

    factory = getattr(pretrained, str(spec.model).replace("-", "_"), None)
    if factory is None:
        raise MemberError(f"member '{spec.name}': this orb-models has no architecture '{spec.model}'")
    # torch.compile on CPU recompiles for every new system size (minutes each): off unless asked for.
    options: dict[str, Any] = {"compile": device != "cpu", **spec.options}
    loaded = factory(weights_path=spec.checkpoint, device=device, **options)
    # orb-models >= 0.6 returns (model, atoms_adapter); older versions the model alone.
    if isinstance(loaded, tuple):
        calc = ORBCalculator(loaded[0], loaded[1], device=device)
    else:
        calc = ORBCalculator(loaded, device=device)
    return OrbMember(spec, device, calc)


def load_mattersim(spec: MemberSpec, device: str) -> Member:
    from mattersim.forcefield import MatterSimCalculator

    return CalculatorMember(spec, device, MatterSimCalculator(load_path=spec.checkpoint, device=device, **spec.options))


def load_grace(spec: MemberSpec, device: str) -> Member:
    from tensorpotential.calculator import TPCalculator

    return CalculatorMember(spec, device, TPCalculator(model=spec.checkpoint, **spec.options))


def load_nequip(spec: MemberSpec, device: str) -> Member:
    from nequip.ase import NequIPCalculator

    # nequip >= 0.7 loads compiled models; older versions deployed TorchScript files.
    factory = getattr(NequIPCalculator, "from_compiled_model", None) or NequIPCalculator.from_deployed_model
    return CalculatorMember(spec, device, factory(spec.checkpoint, device=device, **spec.options))


def load_deepmd(spec: MemberSpec, device: str) -> Member:
    from deepmd.calculator import DP

    kwargs: dict[str, Any] = dict(spec.options)
    if spec.task is not None:
        kwargs["head"] = spec.task
    return CalculatorMember(spec, device, DP(model=spec.checkpoint, **kwargs))
