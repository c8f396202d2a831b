-- Content fingerprints of the files a campaign refers to (the ensemble file, member checkpoints, replay and
-- source data, an INCAR template): the change guard compares contents, not only paths (alloop.fingerprints).
CREATE TABLE file_fingerprint (
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    role          TEXT NOT NULL,                    -- e.g. 'ensemble file', 'checkpoint of member SevenNet'
    path          TEXT NOT NULL,                    -- absolute
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    sha256        TEXT NOT NULL,                    -- of the file, or of its first and last MiBs and size when large
    updated_at    REAL NOT NULL,
    PRIMARY KEY (campaign_id, role, path)
);
