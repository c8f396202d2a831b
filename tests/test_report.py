"""`alloop report`: a campaign database as a static HTML page, checked in a real browser (headless Chromium).

The database is written through the Store as the controller writes it, from the paper's W set (real
geometries, uMLIP predictions and DFT labels; tests/report_campaign.py); the parity plots use the paper's
published W ACE. Nothing runs a uMLIP, DFT or a fit here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from alloop import paper, uq
from alloop.cli import main
from alloop.cli.status import collect
from alloop.errors import StateError
from alloop.report import build_report
from alloop.state import ReadOnlyStore, Store
from tests.report_campaign import FORCE_MEMBER, build_campaign_db

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def campaign_db(shared_data, tmp_path_factory):
    return build_campaign_db(tmp_path_factory.mktemp("campaign") / "alloop.db", shared_data, n_configs=60, iterations=3)


@pytest.fixture(scope="module")
def report(campaign_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    assert main(["report", str(campaign_db), "-o", str(out)]) == 0
    return out / "index.html"


class _Page(HTMLParser):
    """The <img> sources, `data-key` values, section titles and the body's attributes of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.keys: dict[str, str] = {}
        self.sections: list[str] = []
        self.body: dict[str, str] = {}
        self._key: str | None = None
        self._h2 = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        self._key = a.get("data-key")
        self._h2 = tag == "h2"

    def handle_data(self, data):
        if self._key:
            self.keys[self._key] = self.keys.get(self._key, "") + data
        if self._h2:
            self.sections.append(data)

    def handle_endtag(self, tag):
        self._key, self._h2 = None, False


def chromium() -> str:
    exe = shutil.which("chromium")
    assert exe, "headless Chromium is needed for the browser check: apt-get install chromium (in .ci/install)"
    return exe


def render(page: Path, tmp_path: Path) -> _Page:
    """Load the page in headless Chromium and read back its DOM after load, with each image's naturalWidth
    (0 for a broken image) recorded on <body> by a script in a copy of the page beside the original."""
    probe = page.with_name("_browser_check.html")
    script = ("<script>window.addEventListener('load', () => document.body.setAttribute('data-widths', "
              "[...document.images].map(i => i.naturalWidth).join(',')));</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    try:
        proc = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
             "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        probe.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _Page(proc.stdout)


def test_every_figure_loads_in_a_browser_and_the_numbers_match_status(report, campaign_db, tmp_path):
    dom = render(report, tmp_path)
    widths = [int(w) for w in dom.body["data-widths"].split(",")]
    assert len(widths) == len(dom.images) >= 9, dom.images
    assert all(w > 0 for w in widths), dict(zip(dom.images, widths))  # no broken image
    assert sorted(dom.images) == sorted(p.name for p in report.parent.glob("*.png")), "every figure on the page, none left over"

    status = collect(campaign_db)  # what `alloop status --json` prints
    assert dom.keys["status"] == status["status"] == "max_iterations"
    assert dom.keys["iteration"] == str(status["iteration"])
    assert dom.keys["n_configurations"] == str(status["n_configurations"]) == "63"  # 60 selected, 3 rejected as unphysical
    for source, n in status["labels"].items():
        assert dom.keys[f"labels.{source}"] == str(n)
    for state, n in status["configurations"].items():
        assert dom.keys[f"configurations.{state}"] == str(n)
    for state, n in status["dft_jobs"].items():
        assert dom.keys[f"dft_jobs.{state}"] == str(n)
    assert dom.keys["dft_fraction_by_atoms"] == f"{status['dft_fraction_by_atoms']:.2%}"
    assert 0 < status["dft_fraction_by_atoms"] < 1 and set(status["labels"]) == {"dft", "umlip"}
    assert dom.sections == ["State", "Iterations and the DFT ledger", "Uncertainty U and the true force error",
                            "ACE training and test errors", "What the potentials predict", "Extrapolation grade γ of fresh candidates",
                            "Current potential against the DFT labels", "Warnings and errors"]
    # the published W ACE against its own training labels: a few meV/atom and ~0.1-0.2 eV/Å
    assert float(dom.keys["parity.energy_rmse"]) < 30 and float(dom.keys["parity.force_rmse"]) < 0.5


def test_the_learning_curve_on_the_external_test_set_in_status_and_report(campaign_db, report, capsys):
    """Every potential's errors on train.test_sets with the DFT atoms so far: status --json, status and the report."""
    status = collect(campaign_db)
    curve = status["learning_curve"]
    assert [row["iteration"] for row in curve] == [0, 1, 2]
    assert [row["test_sets"]["paper-W-general"]["force_rmse"] for row in curve] == pytest.approx([0.5, 0.25, 0.5 / 3])
    assert [row["n_excluded"] for row in curve] == [0, 1, 2]
    dft = [row["dft_atoms"] for row in curve]
    assert dft == sorted(dft) and dft[-1] > 0  # cumulative
    # the stored DFT labels each ran 40 s per atom: the wall hours follow the atoms
    assert [row["dft_wall_h"] for row in curve] == pytest.approx([40.0 * n / 3600 for n in dft])
    assert main(["status", str(campaign_db)]) == 0
    text = capsys.readouterr().out
    assert "learning curve" in text
    assert f"iteration 2: {curve[2]['n_train']} configurations, {dft[2]} DFT atoms ({curve[2]['dft_wall_h']:.2f} DFT wall hours)" in text
    assert "paper-W-general 0.167 / 13.3" in text
    page = report.read_text()
    assert "force RMSE paper-W-general" in page and "left out (above the fit" in page


SCREEN_W, SCREEN_H = 1280, 4000


def _layout(page: Path, tmp_path: Path) -> dict:
    """Where the browser lays out the page's images, tables and heading in a SCREEN_W x SCREEN_H window (CSS
    pixels, device pixel ratio 1 as in the screenshot): read back from its DOM after load."""
    probe = page.with_name("_layout_check.html")
    # the content box (inside border and padding): where an image's pixels are drawn
    script = ("<script>window.addEventListener('load', () => { const box = e => { const r = e.getBoundingClientRect(), "
              "s = getComputedStyle(e), px = k => parseFloat(s[k]) || 0; "
              "const x = r.left + px('borderLeftWidth') + px('paddingLeft'), y = r.top + px('borderTopWidth') + px('paddingTop'); "
              "return {src: e.getAttribute('src'), x: Math.round(x), y: Math.round(y), "
              "w: Math.round(r.right - px('borderRightWidth') - px('paddingRight') - x), "
              "h: Math.round(r.bottom - px('borderBottomWidth') - px('paddingBottom') - y)}; }; "
              "document.body.setAttribute('data-layout', JSON.stringify({"
              "images: [...document.images].map(box), tables: [...document.querySelectorAll('table')].map(box), "
              "h1: box(document.querySelector('h1'))})); });</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    try:
        proc = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'layout-profile'}", f"--window-size={SCREEN_W},{SCREEN_H}",
             "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        probe.unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(_Page(proc.stdout).body["data-layout"])


def test_a_screenshot_of_the_page(report, tmp_path):
    """What the browser shows: at every place where the page lays out a figure the screenshot holds that
    figure (its PNG scaled to the box), and the heading and tables show text, not blank boxes."""
    from PIL import Image

    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={SCREEN_W},{SCREEN_H}",
         "--virtual-time-budget=10000", f"--screenshot={shot}", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    with Image.open(shot) as img:
        screen = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert screen.shape == (SCREEN_H, SCREEN_W, 3)
    layout = _layout(report, tmp_path)

    def inside(box: dict) -> bool:
        return box["w"] > 0 and box["h"] > 0 and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["w"] <= SCREEN_W and box["y"] + box["h"] <= SCREEN_H

    def crop(box: dict) -> np.ndarray:
        return screen[box["y"]:box["y"] + box["h"], box["x"]:box["x"] + box["w"]]

    shown = [box for box in layout["images"] if inside(box)]
    assert len(shown) >= 3, layout["images"]  # the first screen holds the ledger bars and the U figures at least
    figures = sorted({box["src"] for box in layout["images"]})

    def scaled(src: str, box: dict) -> np.ndarray:
        with Image.open(report.parent / src) as img:
            return np.asarray(img.convert("RGB").resize((box["w"], box["h"]), Image.LANCZOS), dtype=np.float64)

    for box in shown:
        got = crop(box)
        diff = {src: np.abs(got - scaled(src, box)).mean() for src in figures}
        # the figure there is this one (mean difference of a few levels of 255 from scaling), and no other
        assert diff[box["src"]] < 8 and min(diff, key=diff.get) == box["src"], (box, diff)
        assert (got < 200).any(axis=2).mean() > 0.01  # and the figure is not a blank box
    assert inside(layout["h1"]) and (crop(layout["h1"]) < 128).any(axis=2).mean() > 0.02  # dark heading text
    tables = [box for box in layout["tables"] if inside(box)]
    assert len(tables) >= 3
    for box in tables:
        assert (crop(box) < 128).any(axis=2).mean() > 0.02, f"table at {box} shows no text"


def test_force_error_is_the_force_members_against_dft(campaign_db, shared_data):
    from alloop.report import data

    store = Store.open_readonly(campaign_db)
    try:
        camp = store.campaign()
        t = data.load_tables(store, camp["id"], json.loads(camp["config_json"]))
    finally:
        store.close()
    assert t.force_member == "10-eqV2-31-omat"
    d = np.load(shared_data / "uq_umlip_W" / "W_uq_umlip.npz")
    member = d[paper.w_npz_force_key(d["model_names"], FORCE_MEMBER)]
    expected = uq.force_error(d["forces_dft"], member, d["offsets"])
    with sqlite3.connect(campaign_db) as con:
        index = {i: int(h.rsplit("-", 1)[1]) for i, h in con.execute(
            "SELECT c.id, c.hash FROM configuration c JOIN label l ON l.configuration_id = c.id WHERE l.source = 'dft'")}
    assert sorted(index) == sorted(t.dft["id"])
    np.testing.assert_allclose(t.dft["delta_f"], expected[[index[i] for i in t.dft["id"]]], rtol=1e-6)
    per_it = data.iteration_table(t)
    assert per_it["cum_dft_atoms"].iloc[-1] == t.dft["n_atoms"].sum()
    assert (per_it["umlip_configs"] + per_it["dft_configs"] == per_it["selected"]).all()
    assert np.isclose(per_it["cum_dft_core_h"].iloc[-1], (40.0 * t.dft["n_atoms"] * 16 / 3600).sum())


def test_the_report_never_writes_and_works_beside_a_writing_controller(campaign_db, tmp_path):
    digest = hashlib.sha256(campaign_db.read_bytes()).hexdigest()
    writer = sqlite3.connect(campaign_db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a controller in the middle of a transition
        writer.execute("INSERT INTO event (campaign_id, ts, level, kind, message) VALUES (1, 0, 'error', 'test', 'uncommitted')")
        index = build_report(campaign_db, tmp_path / "r")
        assert "uncommitted" not in index.read_text()
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert hashlib.sha256(campaign_db.read_bytes()).hexdigest() == digest
    ro = Store.open_readonly(campaign_db)
    try:
        assert isinstance(ro, ReadOnlyStore) and not hasattr(ro, "log_event")  # no write methods at all
        with pytest.raises(StateError, match="could not be written"):
            with ro._tx() as c:  # and its connection refuses a write all the same
                c.execute(text("INSERT INTO event (campaign_id, ts, level, kind, message) VALUES (1, 0, 'info', 'test', 'no')"))
    finally:
        ro.close()


def test_an_old_database_before_and_after_its_migration(campaign_db, tmp_path):
    old = tmp_path / "old.db"
    shutil.copy(campaign_db, old)
    with sqlite3.connect(old) as con:  # as written by an alloop of schema version 1
        con.execute("DROP TABLE controller_lock")
        con.execute("DROP TABLE sweep_fit")
        con.execute("DROP TABLE property_result")
        con.execute("DROP TABLE final_potential")
        con.execute("DROP TABLE file_fingerprint")
        con.execute("DROP TABLE candidate_pool")
        con.execute("ALTER TABLE configuration DROP COLUMN source_json")
        con.execute("ALTER TABLE iteration DROP COLUMN failed_stage")
        con.execute("ALTER TABLE dft_job DROP COLUMN corrections_json")
        con.execute("PRAGMA user_version = 1")
    page = build_report(old, tmp_path / "before").read_text()
    assert "database schema version 1" in page and "migrates it" in page
    Store.open(old).close()  # what `alloop run` does first (the read-only commands never migrate)
    page = build_report(old, tmp_path / "after").read_text()
    assert "Current potential against the DFT labels" in page and "newer than this alloop" not in page


def test_a_potential_file_gone_missing_leaves_the_rest_of_the_page(campaign_db, tmp_path):
    moved = tmp_path / "moved.db"
    shutil.copy(campaign_db, moved)
    with sqlite3.connect(moved) as con:  # e.g. the work directory was cleaned or copied without iter_*/
        con.execute("UPDATE potential SET path = '/gone/output_potential.yaml'")
    dom = render(build_report(moved, tmp_path / "r"), tmp_path)
    assert "Current potential against the DFT labels" in dom.sections and "parity.force_rmse" not in dom.keys
    assert "not drawn:" in (tmp_path / "r" / "index.html").read_text() and "/gone/output_potential.yaml" in (tmp_path / "r" / "index.html").read_text()
    assert "u_histograms.png" in dom.images and all(int(w) > 0 for w in dom.body["data-widths"].split(","))


def test_a_sweep_adds_its_table_and_figure(campaign_db, report, tmp_path, monkeypatch):
    def sweep_results(self, cid):  # the contract of `alloop sweep` (issue 9)
        rows = []
        for u_c, share in ((0.0, 1.0), (0.1, 0.95), (1.0, 0.043), (10.0, 0.028), (float("inf"), 0.0)):
            for seed in (0, 1):
                err = 1.0 + 60 * (1 - share) ** 6 + 0.2 * seed
                rows.append({"u_c": u_c, "seed": seed, "n_configs": 1129, "dft_share_configs": min(1, 2 * share), "dft_share_atoms": share,
                             "label_rmse_e": 0.0 if share == 1 else err, "label_rmse_f": 0.02 * err, "train_rmse_e": 5 + err,
                             "train_rmse_f": 0.15 + 0.01 * err, "all_rmse_e": 6 + err, "all_rmse_f": 0.16 + 0.01 * err,
                             "test_rmse_e": 6.5 + err, "test_rmse_f": 0.17 + 0.01 * err})
        return rows

    assert "U_c sweep" not in report.read_text()  # no sweep results: no section
    monkeypatch.setattr(ReadOnlyStore, "sweep_results", sweep_results)
    index = build_report(campaign_db, tmp_path / "sweep")
    dom = render(index, tmp_path)
    assert "U_c sweep" in dom.sections and "sweep.png" in dom.images
    assert all(int(w) > 0 for w in dom.body["data-widths"].split(","))
    text = index.read_text()
    assert "4.30%" in text and "inf" in text  # DFT share by atoms at U_c = 1, and the all-uMLIP end


def test_a_new_campaign_and_bad_targets(tmp_path, capsys):
    db = tmp_path / "new.db"
    s = Store.open(db)
    s.open_campaign("fresh", '{"max_iterations": 3, "elements": ["W"], "ensemble": "offline"}')
    s.close()
    page = build_report(db, tmp_path / "r").read_text()
    assert "No iteration yet." in page and "<img" not in page

    assert main(["report", str(tmp_path / "absent.db")]) == 2
    assert "no campaign database at" in capsys.readouterr().err
    (tmp_path / "junk.db").write_text("not a database")
    assert main(["report", str(tmp_path / "junk.db")]) == 2
    assert "alloop report:" in capsys.readouterr().err
