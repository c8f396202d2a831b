-- What each potential predicts (alloop.properties): lattice constant, elastic constants, defect, surface and
-- stacking-fault energies, mixing energies. One row per potential, or the campaign's teacher (its label member),
-- and property settings (`fingerprint`), so the loop computes them once and `alloop report` only reads them.
CREATE TABLE property_result (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    subject       TEXT NOT NULL,                    -- potential | teacher
    iteration_idx INTEGER,                          -- the potential's iteration; NULL for the teacher
    model         TEXT NOT NULL,                    -- the potential's path, or the member's name
    fingerprint   TEXT NOT NULL,                    -- the property settings the row was computed with
    result_json   TEXT NOT NULL,                    -- alloop.properties.PropertyResult
    seconds       REAL NOT NULL,
    created_at    REAL NOT NULL,
    UNIQUE (campaign_id, subject, model, fingerprint)
);
