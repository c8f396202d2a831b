-- An iteration's candidate pool as drawn: the evaluation of iteration i runs iteration i+1's exploration with the
-- new potential (its evenly spaced frames are the convergence sample) and stores the pool here, in the
-- transaction that stores the verdict, so iteration i+1 labels exactly those candidates, on any machine,
-- without running the MD again.
CREATE TABLE candidate_pool (
    campaign_id   INTEGER NOT NULL REFERENCES campaign(id),
    iteration_idx INTEGER NOT NULL,                 -- the iteration that labels from it
    pool_json     TEXT NOT NULL,                    -- alloop.explore.pool.CandidatePool.to_json
    created_at    REAL NOT NULL,
    PRIMARY KEY (campaign_id, iteration_idx)
);
