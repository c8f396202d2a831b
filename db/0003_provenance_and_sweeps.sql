-- Where each configuration came from (data-set candidates: file, index, group; generators: null), and
-- the fits of `alloop sweep`, one row per (U_c, seed, label set and settings), so an interrupted sweep
-- resumes without refitting.
ALTER TABLE configuration ADD COLUMN source_json TEXT;

CREATE TABLE sweep_fit (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    u_c           REAL NOT NULL,                    -- eV/Å; 1e308 stands for infinity (all uMLIP labels)
    seed          INTEGER NOT NULL,
    fingerprint   TEXT NOT NULL,                    -- label set, split and fit settings
    fit_dir       TEXT NOT NULL,
    potential     TEXT NOT NULL,
    metrics_json  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    UNIQUE (campaign_id, u_c, seed, fingerprint)
);

-- The stage an iteration failed in, so `alloop run --retry` resumes it there once the cause is fixed.
ALTER TABLE iteration ADD COLUMN failed_stage TEXT;
