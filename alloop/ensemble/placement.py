"""Where and how big: batches of similar-sized structures, their size per device, and the process
setting that keeps large CPU batches as fast per atom as single structures.

Measured in `tests/benchmarks/bench_ensemble.py` (see its `--sweep`): on CPU a model call costs the
same per atom whether it sees one structure or many, once glibc stops handing every large tensor its
own fresh `mmap` (see `tune_cpu_allocator`); batching then only saves the per-call overhead, which
is gone by a few dozen atoms. So CPU batches stop at `CPU_BATCH_ATOMS` and a bigger structure runs
alone (the computation the library's own ASE calculator does). On a GPU the call overhead dominates
up to thousands of atoms, so batches are as large as the free GPU memory allows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger("alloop.ensemble")

# Atoms per CPU model call: past ~32 atoms, SevenNet and CHGNet gain nothing from batching (--sweep).
CPU_BATCH_ATOMS = 64
# Share of the free GPU memory one batch may use; the rest absorbs the spread of per-atom cost
# between structures (neighbour counts) and other members' models on the same device.
GPU_MEMORY_SHARE = 0.5
# Before a member's first GPU batch shows its memory per atom: a size every family here fits in 16 GB.
GPU_FIRST_BATCH_ATOMS = 1024


def size_batches(sizes: Sequence[int], max_structures: int, max_atoms: int | None) -> list[list[int]]:
    """Indices into `sizes` (atoms per structure) grouped into batches of similar sizes: sorted by size
    (stable, so equal sizes keep their order), each batch at most `max_structures` structures and
    `max_atoms` atoms (a structure larger than that is a batch of its own). Callers put results back
    by index, so the order of the batches does not matter."""
    order = np.argsort(np.asarray(sizes, dtype=np.int64), kind="stable").tolist()
    batches: list[list[int]] = []
    current: list[int] = []
    atoms = 0
    for i in order:
        n = int(sizes[i])
        if current and (len(current) >= max_structures or (max_atoms is not None and atoms + n > max_atoms)):
            batches.append(current)
            current, atoms = [], 0
        current.append(i)
        atoms += n
    if current:
        batches.append(current)
    return batches


def gpu_batch_atoms(bytes_per_atom: float | None, free_bytes: int) -> int:
    """Atoms per GPU batch: `GPU_MEMORY_SHARE` of the free GPU memory over what one atom of this member
    took at most so far (peak allocated / atoms), or `GPU_FIRST_BATCH_ATOMS` before that is known."""
    if not bytes_per_atom:
        return GPU_FIRST_BATCH_ATOMS
    return max(1, int(GPU_MEMORY_SHARE * free_bytes / bytes_per_atom))


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process for the next model call (glibc only; once per process).

    Why: glibc serves allocations above its mmap threshold (at most 32 MB) with a fresh `mmap` and
    unmaps them on free, so every large activation tensor of a batch costs page faults on each call;
    one SevenNet call on four 54-atom W cells took ~300k minor page faults and 30 % of its CPU time in
    the kernel zeroing pages, four calls on one cell each ~2k faults and none. Turning mmap off and
    raising the trim threshold makes batches as cheap per atom as single structures. The price: up to
    1 GiB of freed heap stays with the process (an inference worker reuses it on the next call).
    Process-wide, like torch's thread count. Returns whether the setting was applied.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to tune
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
    ok = bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))
    log.debug("CPU allocator tuned for inference: %s", ok)
    return ok
