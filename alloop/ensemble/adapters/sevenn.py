"""SevenNet (sevenn): batched inference through its torch_geometric graph batching, the path
`sevenn.scripts.inference` takes, instead of one `SevenNetCalculator` call per structure."""

from __future__ import annotations

from ase import Atoms

from alloop.ensemble.members import BatchOutput, Member, split_per_structure
from alloop.ensemble.spec import MemberSpec
from alloop.errors import MemberError


class SevenNetMember(Member):
    def __init__(self, spec: MemberSpec, device: str) -> None:
        import sevenn._keys as keys
        from sevenn.util import load_checkpoint

        cp = load_checkpoint(spec.checkpoint or spec.model)
        model = cp.build_model()
        model.set_is_batch_data(True)
        self.modal = _canonical_modal(spec, model.modal_map)
        self.cutoff = float(cp.config[keys.CUTOFF])
        self.model = model.to(device).eval()
        super().__init__(spec, device, frozenset(int(z) for z in cp.config[keys.TYPE_MAP]))

    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        import sevenn._keys as keys
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.loader.dataloader import Collater

        graphs = []
        for atoms in structures:
            g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False))
            if self.modal is not None:
                g[keys.DATA_MODALITY] = self.modal
            graphs.append(g)
        batch = Collater([], follow_batch=None, exclude_keys=None)(graphs).to(self.device)
        out = self.model(batch)
        energies = out[keys.PRED_TOTAL_ENERGY].detach().cpu().numpy()
        forces = split_per_structure(out[keys.PRED_FORCE].detach().cpu().numpy(), structures)
        return BatchOutput(energies, forces)


def _canonical_modal(spec: MemberSpec, modal_map: dict[str, int] | None) -> str | None:
    if not modal_map:
        if spec.modal is not None:
            raise MemberError(f"member '{spec.name}': this SevenNet model has no modals (modal '{spec.modal}' given)")
        return None
    by_upper = {m.upper(): m for m in modal_map}
    if spec.modal is None or spec.modal.upper() not in by_upper:
        raise MemberError(f"member '{spec.name}': this SevenNet model needs modal: one of {', '.join(modal_map)}")
    return by_upper[spec.modal.upper()]


def load(spec: MemberSpec, device: str) -> Member:
    return SevenNetMember(spec, device)
