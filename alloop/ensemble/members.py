"""The one interface every uMLIP adapter implements, and loading a member's model in this interpreter.

`load_local(spec)` imports the kind's adapter and loads the model; `alloop.ensemble.loading.load_member`
caches it per process, or runs a member with `python:` in a worker of that interpreter instead
(alloop.ensemble.worker). `Member.predict` never lets one bad
structure sink the batch: an exception, a NaN/inf output or an element the model does not know
becomes a per-structure entry in `MemberPredictions.errors`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from alloop.ensemble.kinds import KINDS
from alloop.ensemble.placement import CPU_BATCH_ATOMS, gpu_batch_atoms, size_batches, tune_cpu_allocator
from alloop.ensemble.results import MemberPredictions
from alloop.ensemble.spec import MemberSpec
from alloop.errors import AlloopError, MemberError, MissingFileError


@dataclass
class BatchOutput:
    """What an adapter returns for a batch of b structures (any float dtype; checked by Member)."""

    energies: Sequence[float] | np.ndarray
    forces: Sequence[np.ndarray]
    extras: dict[str, Sequence[float]] = field(default_factory=dict)


def split_per_structure(flat: np.ndarray, structures: Sequence[Any]) -> list[np.ndarray]:
    """Per-structure blocks of a batched per-atom array (graph batches concatenate atoms in order)."""
    return np.split(flat, np.cumsum([len(a) for a in structures])[:-1])


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error."""
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise MemberError("device 'cuda' requested but no CUDA GPU is visible to torch (use device: auto or cpu)")
    return "cuda" if has_cuda else "cpu"


def clean_copy(atoms: Atoms) -> Atoms:
    """Geometry only: no calculator, no constraints (FixAtoms would zero forces), no info."""
    return Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


class Member(ABC):
    """A loaded uMLIP. Subclasses implement `_predict_batch`; `predict` adds batching, failure
    isolation and output checks."""

    def __init__(self, spec: MemberSpec, device: str, elements: frozenset[int] | None = None) -> None:
        self.spec = spec
        self.device = device
        self.elements = elements if elements is not None else spec.elements
        self._gpu_bytes_per_atom: float | None = None  # peak over the batches so far, sizes the next ones

    @abstractmethod
    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        """Energies and forces of clean structures (no calculator/constraints); may raise."""

    def _set_threads(self) -> None:
        # torch's thread count is process-wide: set it before every call, as members may differ.
        if self.device == "cpu" and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.spec.threads or 1)

    def predict(self, structures: Sequence[Atoms]) -> MemberPredictions:
        n = len(structures)
        out = MemberPredictions(
            member=self.spec.name,
            energies=np.full(n, np.nan),
            forces=[np.full((len(a), 3), np.nan) for a in structures],
        )
        todo = []
        for i, atoms in enumerate(structures):
            reason = self._precheck(atoms)
            if reason:
                out.errors[i] = reason
            else:
                todo.append(i)
        clean = {i: clean_copy(structures[i]) for i in todo}
        self._set_threads()
        for batch in size_batches([len(clean[i]) for i in todo], self.spec.batch_size, self.batch_atoms()):
            idx = [todo[j] for j in batch]
            if self.device == "cuda":
                self._run_measuring_gpu_memory(idx, clean, out)
            else:
                self._run(idx, clean, out)
        return out

    def batch_atoms(self) -> int:
        """Most atoms per model call on this member's device (see alloop.ensemble.placement)."""
        if self.spec.batch_atoms is not None:
            return self.spec.batch_atoms
        if self.device == "cuda":
            import torch

            return gpu_batch_atoms(self._gpu_bytes_per_atom, torch.cuda.mem_get_info()[0])
        return CPU_BATCH_ATOMS

    def _run_measuring_gpu_memory(self, idx: list[int], clean: Mapping[int, Atoms], out: MemberPredictions) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        self._run(idx, clean, out)
        per_atom = (torch.cuda.max_memory_allocated() - before) / sum(len(clean[i]) for i in idx)
        self._gpu_bytes_per_atom = max(self._gpu_bytes_per_atom or 0.0, per_atom)

    def _precheck(self, atoms: Atoms) -> str | None:
        if len(atoms) == 0:
            return "structure has no atoms"
        if not (np.isfinite(atoms.positions).all() and np.isfinite(np.asarray(atoms.cell)).all()):
            return "structure has NaN or infinite positions or cell"
        if self.elements is not None:
            unknown = sorted(set(atoms.numbers.tolist()) - self.elements)
            if unknown:
                from ase.data import chemical_symbols

                return f"model does not know element(s) {', '.join(chemical_symbols[z] for z in unknown)}"
        return None

    def _run(self, idx: list[int], clean: Mapping[int, Atoms], out: MemberPredictions) -> None:
        try:
            got = self._predict_batch([clean[i] for i in idx])
        except Exception as exc:  # a library error on one structure must not sink the others
            if len(idx) == 1:
                out.errors[idx[0]] = f"{type(exc).__name__}: {exc}".strip()
                return
            for i in idx:  # isolate the culprit(s)
                self._run([i], clean, out)
            return
        energies = np.asarray(got.energies, dtype=np.float64).reshape(-1)
        if energies.size != len(idx) or len(got.forces) != len(idx):
            raise MemberError(
                f"member '{self.spec.name}': adapter returned {energies.size} energies and {len(got.forces)} force "
                f"arrays for {len(idx)} structures (an alloop adapter bug)"
            )
        for k, i in enumerate(idx):
            f = np.asarray(got.forces[k], dtype=np.float64)
            n_atoms = len(clean[i])
            if f.shape != (n_atoms, 3):
                out.errors[i] = f"model returned forces shaped {f.shape} for {n_atoms} atoms"
            elif not (np.isfinite(energies[k]) and np.isfinite(f).all()):
                out.errors[i] = "model returned non-finite energy or forces (NaN/inf)"
            else:
                out.energies[i] = energies[k]
                out.forces[i] = f
        ok = np.array([i not in out.errors for i in idx])
        for name, values in got.extras.items():
            col = out.extras.setdefault(name, np.full(len(out), np.nan))
            col[idx] = np.where(ok, np.asarray(values, dtype=np.float64), np.nan)

    def close(self) -> None:
        """Release external resources (worker processes); in-process models just stay cached."""


class CalculatorMember(Member):
    """Fallback for libraries without a batched API: one ASE calculator call per structure."""

    def __init__(self, spec: MemberSpec, device: str, calculator: Any, elements: frozenset[int] | None = None) -> None:
        super().__init__(spec, device, elements)
        self.calculator = calculator

    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        energies, forces = [], []
        extras: dict[str, list[float]] = {}
        for atoms in structures:
            atoms.calc = self.calculator
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
            for name, value in self._extras(self.calculator, atoms).items():
                extras.setdefault(name, []).append(value)
        return BatchOutput(energies, forces, extras)

    def _extras(self, calculator: Any, atoms: Atoms) -> dict[str, float]:
        """Per-structure extra outputs read from the calculator after a call (none by default)."""
        return {}


# ---------------------------------------------------------------------------------------------------
# loading in this process


def load_local(spec: MemberSpec) -> Member:
    """Load the member's model in this interpreter (no cache: see alloop.ensemble.loading.load_member)."""
    kind = KINDS[spec.kind]
    where = f"ensemble member '{spec.name}' ({spec.kind})"
    try:
        found = importlib.util.find_spec(kind.package) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        from alloop.ensemble.environments import family_of_kind

        family = family_of_kind(spec.kind)
        own_env = f"`alloop env create {family}` and give this member the python: line it prints" if family else (
            "run this member in an environment that has it with python: /path/to/that/env/bin/python")
        raise MemberError(
            f"{where}: package '{kind.package}' is not installed in {sys.executable}\n"
            f"  fix: {own_env}; or {kind.install} here"
        )
    if spec.checkpoint is not None and not Path(spec.checkpoint).is_file():
        raise MissingFileError(spec.checkpoint, f"checkpoint of {where}", "put the weights file there or fix checkpoint:")
    device = resolve_device(spec.device)
    if device == "cpu":
        tune_cpu_allocator()
    module_name, func_name = kind.adapter.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    try:
        return loader(spec, device)
    except AlloopError:
        raise
    except Exception as exc:
        raise MemberError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
