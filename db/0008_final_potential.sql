-- The campaign's final potential: a longer fit, warm-started from the last iteration's potential on the same
-- training data, once the campaign has converged or reached max_iterations (train.final_maxiter). The row is
-- written with the outcome when the last γ evaluation ends the campaign (path NULL: the fit is pending), and
-- completed, with the campaign's outcome, in one transaction once the fit is stored.
CREATE TABLE final_potential (
    campaign_id   INTEGER PRIMARY KEY REFERENCES campaign(id),
    iteration_idx INTEGER NOT NULL,                 -- the iteration whose training data and potential it continues
    outcome       TEXT NOT NULL,                    -- converged | max_iterations
    message       TEXT NOT NULL,
    path          TEXT,
    active_set    TEXT,
    n_train       INTEGER,
    metrics_json  TEXT,
    created_at    REAL NOT NULL,
    finished_at   REAL
);
