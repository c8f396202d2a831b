"""Figures and summaries of a campaign (matplotlib is imported only when a figure is drawn).

`build_report(db_path, outdir)` writes the campaign's HTML page; `alloop report` and the controller call it.
"""

from __future__ import annotations

from pathlib import Path


def build_report(db_path: str | Path, outdir: str | Path) -> Path:
    """Write `outdir/index.html` with its PNG figures for the campaign database `db_path` (opened read-only);
    returns the page's path. See `alloop.report.build`."""
    from alloop.report.build import build_report as build  # pandas and the store load only when a report is built

    return build(db_path, outdir)


__all__ = ["build_report"]
