-- One controller per campaign: the holder refreshes its heartbeat; a stale or dead holder is replaced.
CREATE TABLE controller_lock (
    campaign_id   INTEGER PRIMARY KEY REFERENCES campaign(id),
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    token         TEXT NOT NULL,
    acquired_at   REAL NOT NULL,
    heartbeat     REAL NOT NULL
);
