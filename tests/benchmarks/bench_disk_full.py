"""A full disk and a read-only one, on real file systems (issue 21 item 5): the tiny GPAW campaign of the test suite
(tests/campaigns.py) runs with its work directory, database included, on a 50 MB tmpfs, which a second process
fills to the last byte once the campaign is under way in the chosen stage. The campaign must stop with a message that
says what happened and what to free, commit nothing half, and, once the filler is gone, `alloop run` must take it to
the end with the labels, DFT jobs and potentials of an undisturbed run of the same file. Then the file system is
remounted read-only: `alloop status` must still read the database, `alloop run` must refuse in one line.

    .venv/bin/python tests/benchmarks/bench_disk_full.py                      # fill in iteration 1's DFT
    .venv/bin/python tests/benchmarks/bench_disk_full.py --at 0:train         # fill while iteration 0 fits

Needs root (it mounts a tmpfs); about 3 tiny campaigns' time (~10 min here).
"""

from __future__ import annotations

import argparse
import errno
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.campaigns import alloop, run_to_end, snapshot, snapshot_diff, stage, tiny_campaign  # noqa: E402


STAGE_ORDER = ("generate", "score", "label", "train", "evaluate", "done")


def fill(path: Path) -> int:
    """Write `path` until the file system refuses: ENOSPC; returns the bytes written."""
    n = 0
    block = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as fh:
        while True:
            try:
                n += fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    # the last partial megabyte too, so that not a page is left
    with path.open("ab", buffering=0) as fh:
        while True:
            try:
                n += fh.write(b"\0" * 4096)
            except OSError:
                return n


def reached(s, idx: int, name: str) -> bool:
    return s is not None and (s[0], STAGE_ORDER.index(s[1])) >= (idx, STAGE_ORDER.index(name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--at", default="1:label", help="iteration:stage in which the disk fills (default 1:label)")
    ap.add_argument("--wait", type=float, default=1.0, help="seconds into that stage before filling")
    ap.add_argument("--size-mb", type=int, default=50)
    args = ap.parse_args()
    idx, name = args.at.split(":")
    root = Path(tempfile.mkdtemp(prefix="alloop-diskfull-"))
    small = root / "small"
    small.mkdir()
    print(f"in {root} (the stopped run's output: stopped.log)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size_mb}m", "tmpfs", str(small)], check=True)
    try:
        t0 = time.monotonic()
        reference = tiny_campaign(root / "reference")
        run_to_end(reference)
        print(f"undisturbed run: {time.monotonic() - t0:.0f} s")

        campaign = tiny_campaign(small / "campaign")
        db = campaign.parent / "run" / "alloop.db"
        proc = alloop("run", str(campaign))
        while not reached(stage(db), int(idx), name):
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        time.sleep(args.wait)
        at = stage(db)
        filled = fill(small / "filler")
        print(f"filled the {args.size_mb} MB file system with {filled / 2**20:.1f} MB at {at}")
        out, _ = proc.communicate(timeout=900)
        lines = out.strip().splitlines()
        print(f"`alloop run` exit code {proc.returncode}, {sum('Traceback' in line for line in lines)} traceback(s); "
              "what it said at the end:")
        print("\n".join("    " + line for line in lines[-3:]))
        (root / "stopped.log").write_text(out)
        stopped_at = stage(db)
        (small / "filler").unlink()
        t1 = time.monotonic()
        out = run_to_end(campaign)
        ended = next((line for line in out.splitlines() if line.startswith("campaign '")), out.strip()[-200:])
        print(f"stopped at {stopped_at}; resumed after freeing the space: {ended} ({time.monotonic() - t1:.0f} s)")
        got, want = snapshot(db), snapshot(reference.parent / "run" / "alloop.db")
        same = all(got[k] == want[k] for k in ("status", "configs", "jobs")) and \
            [(h, s, b) for h, s, b, _ in got["labels"]] == [(h, s, b) for h, s, b, _ in want["labels"]] and \
            all(abs(a[3] - b[3]) < 1e-4 for a, b in zip(got["labels"], want["labels"])) and \
            [i for i, _ in got["potentials"]] == [i for i, _ in want["potentials"]]
        print("the resumed campaign equals the undisturbed one" if same else "DIFFERENT:\n" + snapshot_diff(got, want))

        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        t2 = time.monotonic()
        st = subprocess.run([sys.executable, "-m", "alloop", "status", str(db)], capture_output=True, text=True)
        print(f"read-only: `alloop status` exit {st.returncode} in {time.monotonic() - t2:.1f} s: "
              f"{st.stdout.strip().splitlines()[0] if st.stdout.strip() else st.stderr.strip()}")
        run = subprocess.run([sys.executable, "-m", "alloop", "run", str(campaign)], capture_output=True, text=True)
        print(f"read-only: `alloop run` exit {run.returncode}: {run.stderr.strip().splitlines()[-1]}")
        if not same or proc.returncode == 0:
            sys.exit(1)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


if __name__ == "__main__":
    main()
