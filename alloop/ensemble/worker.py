"""Out-of-process ensemble members: a long-lived worker per member, in another interpreter.

uMLIP packages often cannot share one environment (mace-torch pins e3nn 0.4.4, sevenn needs >= 0.5;
fairchem 1.x and 2.x load different checkpoints). A member with `python: /env/bin/python` runs in
`python -m alloop.ensemble.worker` of that interpreter, which loads the model once and serves
batches over its stdin/stdout. The other environment needs alloop (without its dependencies) and
numpy, ase, pydantic and PyYAML besides its uMLIP package: `alloop env create FAMILY` builds one.
When alloop runs from a source checkout, the checkout also goes first on the worker's PYTHONPATH so
both sides run the same code; an installed alloop never puts its own site-packages there (that would
shadow the environment's e3nn, numpy, torch with the controller's).

Messages are length-prefixed pickles (8-byte little-endian length) of plain dicts of numbers and
numpy arrays: {"op": "load", "spec": {...}}, {"op": "predict", "structures": [(numbers, positions,
cell, pbc), ...]}, {"op": "close"}; replies {"ok": True, ...} or {"ok": False, "type", "error"}.
The worker moves file descriptor 1 to stderr first, so libraries that print (CHGNet does) cannot
corrupt the protocol.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from ase import Atoms

from alloop.ensemble.environments import worker_environ
from alloop.ensemble.members import Member, load_local
from alloop.ensemble.results import MemberPredictions
from alloop.ensemble.spec import MemberSpec
from alloop.errors import MemberError

_HEADER = struct.Struct("<Q")
_PICKLE_PROTOCOL = 4  # readable by every Python alloop supports, whichever side is older
_STDERR_TAIL = 3000  # characters of the worker's stderr quoted in a crash report


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=_PICKLE_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next message, or None at end of stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def _encode(structures: Sequence[Atoms]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    return [
        (np.asarray(a.numbers, dtype=np.int64), np.asarray(a.positions, dtype=np.float64),
         np.asarray(a.cell, dtype=np.float64), np.asarray(a.pbc, dtype=bool))
        for a in structures
    ]


_LIVE: weakref.WeakSet[RemoteMember] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for member in list(_LIVE):
        member.close()


class RemoteMember(Member):
    """Proxy for a member running in a worker process of `spec.python`; restarts a dead worker on
    the next call."""

    def __init__(self, spec: MemberSpec) -> None:
        assert spec.python is not None
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        super().__init__(spec, "remote")
        self._start()
        _LIVE.add(self)

    def _start(self) -> None:
        env = worker_environ()
        # A file, not a pipe: a chatty library cannot fill a pipe buffer and deadlock the worker.
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(
                [str(self.spec.python), "-m", "alloop.ensemble.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            )
        except OSError as exc:
            raise MemberError(f"member '{self.spec.name}': cannot start {self.spec.python}: {exc}") from exc
        reply = self._call({"op": "load", "spec": self.spec.model_dump(mode="json", exclude={"python"})})
        self.device = reply["device"]
        self.elements = None if reply["elements"] is None else frozenset(reply["elements"])

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - _STDERR_TAIL))
        return self._stderr.read().decode(errors="replace").strip()

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        where = f"member '{self.spec.name}' (worker {self.spec.python}, pid {self.proc.pid})"
        try:
            _send(self.proc.stdin, message)
            reply = _receive(self.proc.stdout)
        except (BrokenPipeError, ConnectionResetError, pickle.UnpicklingError, EOFError):
            reply = None
        if reply is None:
            code = self.proc.wait()
            tail = self._stderr_tail()
            self.proc = None
            raise MemberError(
                f"{where} exited with code {code} during '{message['op']}'"
                + (f"; its stderr ends with:\n{tail}" if tail else " and wrote nothing to stderr")
            )
        if not reply["ok"]:
            raise MemberError(f"{where}: {reply['type']}: {reply['error']}")
        return reply

    def _predict_batch(self, structures: list[Atoms]) -> Any:  # pragma: no cover - predict is overridden
        raise NotImplementedError

    def predict(self, structures: Sequence[Atoms]) -> MemberPredictions:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        result = self._call({"op": "predict", "structures": _encode(structures)})["result"]
        return MemberPredictions(
            member=self.spec.name,
            energies=result["energies"],
            forces=result["forces"],
            errors=result["errors"],
            extras=result["extras"],
        )

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                _send(proc.stdin, {"op": "close"})  # type: ignore[arg-type]
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Worker loop: load one member, then answer predict requests until close or end of input."""
    member: Member | None = None
    while True:
        msg = _receive(stdin)
        if msg is None or msg["op"] == "close":
            return
        try:
            if msg["op"] == "load":
                member = load_local(MemberSpec.model_validate(msg["spec"]))
                elements = None if member.elements is None else sorted(member.elements)
                reply: dict[str, Any] = {"ok": True, "device": member.device, "elements": elements}
            elif msg["op"] == "predict":
                if member is None:
                    raise MemberError("predict before load")
                structures = [Atoms(numbers=z, positions=r, cell=c, pbc=p) for z, r, c, p in msg["structures"]]
                pred = member.predict(structures)
                reply = {"ok": True, "result": {
                    "energies": pred.energies, "forces": pred.forces, "errors": pred.errors, "extras": pred.extras,
                }}
            else:
                raise MemberError(f"unknown request {msg['op']!r}")
        except Exception as exc:
            reply = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        _send(stdout, reply)


def main() -> None:
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, protocol_out)


if __name__ == "__main__":
    main()
