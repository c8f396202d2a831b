"""Work placement for scoring: structures grouped by size into even batches, GPU batches sized by
memory, models loaded once per worker process. (That the chosen path gives the calculators' numbers
in the caller's order: tests/test_ensemble_members.py.)"""

from __future__ import annotations

from ase.build import bulk

from alloop.ensemble import MemberSpec
from alloop.ensemble.loading import loaded_members
from alloop.ensemble.placement import GPU_FIRST_BATCH_ATOMS, gpu_batch_atoms, size_batches, tune_cpu_allocator


def test_size_batches_group_similar_sizes_under_both_caps():
    sizes = [54, 2, 128, 2, 16, 54, 2, 8]
    batches = size_batches(sizes, max_structures=2, max_atoms=64)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))  # each structure once
    assert batches == [[1, 3], [6, 7], [4], [0], [5], [2]]  # equal sizes keep their order
    assert all(len(b) <= 2 and (len(b) == 1 or sum(sizes[i] for i in b) <= 64) for b in batches)
    # No atom cap: only the structure count splits, still by size.
    assert size_batches(sizes, max_structures=4, max_atoms=None) == [[1, 3, 6, 7], [4, 0, 5, 2]]
    assert size_batches([], 8, 64) == []


def test_cpu_allocator_setting_is_applied_once_on_linux():
    assert tune_cpu_allocator() is True  # glibc (the Linux machines alloop runs on)
    assert tune_cpu_allocator.cache_info().currsize == 1


def test_a_worker_loads_each_member_once_for_many_tasks():
    from distributed import Client, LocalCluster

    from alloop.controller.tasks import predict_task
    from alloop.structures import atoms_to_json

    cells = [bulk("W", "bcc", a=3.17, cubic=True).repeat(n) for n in (1, 2)] + [bulk("W", "bcc", a=3.17)]
    items = [(i, atoms_to_json(a)) for i, a in enumerate(cells)]
    specs = [MemberSpec(name=f"chgnet-{v}", kind="chgnet", model=v, device="cpu") for v in ("0.3.0", "0.2.0")]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for _ in range(2):  # two score stages of a campaign
            futures = [client.submit(predict_task, s, items[k : k + 1], pure=False) for s in specs for k in range(3)]
            rows = [row for f in futures for row in f.result()]
            assert len(rows) == 6 and all(err is None for _, _, _, err in rows)
        (held,) = client.run(loaded_members).values()
    assert sorted(held) == ["chgnet-0.2.0", "chgnet-0.3.0"]


def test_gpu_batches_fill_half_the_free_memory_once_a_batch_has_shown_its_cost():
    # Before any batch: a probe size; after one: half the free memory over the peak bytes per atom.
    assert gpu_batch_atoms(None, 80 * 2**30) == GPU_FIRST_BATCH_ATOMS
    assert gpu_batch_atoms(2**20, 80 * 2**30) == 40 * 2**10  # 1 MiB/atom, 80 GiB free: 40,960 atoms
    assert gpu_batch_atoms(2**30, 2**20) == 1  # never less than one structure's atoms
