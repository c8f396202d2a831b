"""Members in another interpreter (`python:`): same numbers as in-process, clear errors when the
worker dies."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase.build import bulk

from alloop.ensemble import MemberSpec, load_member
from alloop.ensemble.worker import RemoteMember
from alloop.errors import MemberError


def _structures():
    out = []
    for n, seed in ((1, 3), (2, 4)):
        a = bulk("W", "bcc", a=3.17, cubic=True).repeat((n, n, n))
        a.rattle(0.05, seed=seed)
        out.append(a)
    out.append(bulk("Am", "fcc", a=4.9))  # unknown to CHGNet: a per-structure failure, carried back
    return out


@pytest.fixture(scope="module")
def remote_chgnet():
    import chgnet  # noqa: F401
    member = load_member(MemberSpec(name="chgnet-remote", kind="chgnet", model="0.3.0", device="cpu", python=sys.executable))
    yield member
    member.close()


def test_out_of_process_member_gives_the_in_process_numbers(remote_chgnet):
    assert isinstance(remote_chgnet, RemoteMember)
    local = load_member(MemberSpec(name="chgnet-local", kind="chgnet", model="0.3.0", device="cpu"))
    structures = _structures()
    got, want = remote_chgnet.predict(structures), local.predict(structures)
    assert got.member == "chgnet-remote"
    assert got.errors == want.errors and set(got.errors) == {2}
    # Same interpreter, same thread count, same code path: bitwise equal. (CHGNet printed on the
    # worker's stdout while loading; the protocol survived because the worker moved fd 1 to stderr.)
    np.testing.assert_array_equal(got.energies, want.energies)
    for a, b in zip(got.forces, want.forces):
        np.testing.assert_array_equal(a, b)
    assert remote_chgnet.elements == frozenset(range(1, 95))


def test_a_killed_worker_is_reported_then_restarted(remote_chgnet):
    remote_chgnet.proc.kill()
    remote_chgnet.proc.wait()
    with pytest.raises(MemberError, match=r"member 'chgnet-remote' \(worker .*\) exited with code -9 during 'predict'"):
        remote_chgnet._call({"op": "predict", "structures": []})
    # The next call starts a fresh worker.
    pred = remote_chgnet.predict(_structures()[:1])
    assert np.isfinite(pred.energies).all()


def test_worker_that_cannot_start_shows_its_stderr(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ImportError: no module named alloop (fake env)' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(MemberError) as exc:
        RemoteMember(MemberSpec(name="ghost", kind="chgnet", model="0.3.0", python=str(fake)))
    msg = str(exc.value)
    assert "member 'ghost'" in msg and "exited with code 3 during 'load'" in msg and "fake env" in msg


def test_worker_side_load_errors_come_back_as_member_errors(tmp_path):
    import chgnet  # noqa: F401
    bad = tmp_path / "garbage.pth.tar"
    bad.write_bytes(b"not a torch file")
    spec = MemberSpec(name="corrupt", kind="chgnet", checkpoint=str(bad), python=sys.executable)
    with pytest.raises(MemberError, match="'corrupt' .chgnet. failed to load"):
        RemoteMember(spec)

