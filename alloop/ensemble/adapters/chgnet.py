"""CHGNet: batched `CHGNet.predict_graph(graphs, batch_size=...)`, energies and forces only."""

from __future__ import annotations

import contextlib
import sys
import warnings

import numpy as np
from ase import Atoms

from alloop.ensemble.members import BatchOutput, Member
from alloop.ensemble.spec import MemberSpec


class CHGNetMember(Member):
    def __init__(self, spec: MemberSpec, device: str) -> None:
        from chgnet.model import CHGNet

        # CHGNet prints its parameter count on stdout, where `alloop score` writes its report.
        with contextlib.redirect_stdout(sys.stderr):
            if spec.checkpoint is not None:
                model = CHGNet.from_file(spec.checkpoint)
            else:
                model = CHGNet.load(model_name=spec.model, use_device=device, verbose=False)
        # As CHGNetCalculator does: an atom with no neighbour within the cutoff has zero force, which
        # is right for a short-ranged model, so compute (with a warning) instead of refusing.
        model.graph_converter.set_isolated_atom_response("warn")
        self.model = model.to(device).eval()
        n_embed = model.atom_embedding.embedding.num_embeddings
        super().__init__(spec, device, frozenset(range(1, n_embed + 1)))

    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        from pymatgen.io.ase import AseAtomsAdaptor

        graphs = [self.model.graph_converter(AseAtomsAdaptor.get_structure(a)) for a in structures]
        with warnings.catch_warnings():
            # CHGNet 0.4 converts a grad-tracking volume tensor internally; harmless, but noisy per batch.
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad", category=UserWarning)
            preds = self.model.predict_graph(graphs, task="ef", batch_size=len(graphs))
        if isinstance(preds, dict):  # CHGNet unwraps a batch of one
            preds = [preds]
        # CHGNet predicts energy per atom (`is_intensive`); alloop works with totals.
        energies = np.array(
            [float(p["e"]) * (len(a) if self.model.is_intensive else 1) for p, a in zip(preds, structures)]
        )
        return BatchOutput(energies, [p["f"] for p in preds])


def load(spec: MemberSpec, device: str) -> Member:
    return CHGNetMember(spec, device)
