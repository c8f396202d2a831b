-- alloop campaign database, schema version 1.
-- Every stage transition is one transaction (BEGIN IMMEDIATE); arrays are stored as .npy bytes.

CREATE TABLE campaign (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    config_json   TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'running',   -- running | converged | max_iterations | stopped | failed
    message       TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE iteration (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    idx           INTEGER NOT NULL,
    stage         TEXT NOT NULL DEFAULT 'generate',  -- generate | score | label | train | evaluate | done | failed
    message       TEXT,
    started_at    REAL NOT NULL,
    finished_at   REAL,
    UNIQUE (campaign_id, idx)
);

CREATE TABLE configuration (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    hash          TEXT NOT NULL,
    iteration_idx INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    n_atoms       INTEGER NOT NULL,
    formula       TEXT NOT NULL,
    atoms_json    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'selected', -- selected | scored | labelled | failed | quarantined
    route         TEXT,                             -- umlip | dft, once scored
    reason        TEXT,
    created_at    REAL NOT NULL,
    UNIQUE (campaign_id, hash)
);
CREATE INDEX configuration_iteration ON configuration (campaign_id, iteration_idx, status);

CREATE TABLE prediction (
    configuration_id INTEGER NOT NULL REFERENCES configuration(id),
    member        TEXT NOT NULL,
    energy        REAL,
    forces        BLOB,
    error         TEXT,
    PRIMARY KEY (configuration_id, member)
);

CREATE TABLE uncertainty (
    configuration_id INTEGER PRIMARY KEY REFERENCES configuration(id),
    u0            REAL,
    u1            REAL,
    u2            REAL,
    variant       INTEGER NOT NULL,
    u_c           REAL NOT NULL,
    members       TEXT NOT NULL                     -- JSON list of the members that entered U
);

CREATE TABLE label (
    configuration_id INTEGER PRIMARY KEY REFERENCES configuration(id),
    source        TEXT NOT NULL,                    -- dft | umlip
    backend       TEXT NOT NULL,                    -- gpaw | vasp | replay | <member name>
    energy        REAL NOT NULL,
    forces        BLOB NOT NULL,
    stress        BLOB,
    meta_json     TEXT,
    created_at    REAL NOT NULL
);

CREATE TABLE dft_job (
    id            INTEGER PRIMARY KEY,
    configuration_id INTEGER NOT NULL UNIQUE REFERENCES configuration(id),
    backend       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'queued',   -- queued | running | done | failed | quarantined
    attempts      INTEGER NOT NULL DEFAULT 0,
    workdir       TEXT NOT NULL,
    job_id        TEXT,
    reason        TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE INDEX dft_job_status ON dft_job (status);

CREATE TABLE potential (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    iteration_idx INTEGER NOT NULL,
    path          TEXT NOT NULL,
    active_set    TEXT,
    n_train       INTEGER NOT NULL,
    metrics_json  TEXT NOT NULL,
    references_json TEXT,                           -- per-source, per-element energy offsets used for the fit
    created_at    REAL NOT NULL,
    UNIQUE (campaign_id, iteration_idx)
);

CREATE TABLE gamma_eval (
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    iteration_idx INTEGER NOT NULL,
    n_candidates  INTEGER NOT NULL,
    threshold     REAL NOT NULL,
    share_above   REAL NOT NULL,
    gamma_max     BLOB NOT NULL,                    -- per-candidate max γ
    stats_json    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    PRIMARY KEY (campaign_id, iteration_idx)
);

CREATE TABLE event (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER REFERENCES campaign(id),
    iteration_idx INTEGER,
    ts            REAL NOT NULL,
    level         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    data_json     TEXT
);
