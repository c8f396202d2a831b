-- The corrections applied to a DFT calculation (custodian-style: handler, error, changed settings, the settings
-- of the next attempt), oldest first, as alloop.label.handlers records them. The database is what a resume
-- reads: the batch job's name (its attempt number) and the settings of its next attempt come from here, and
-- corrections.json in the work directory is only the calculation's own record of the same list.
ALTER TABLE dft_job ADD COLUMN corrections_json TEXT NOT NULL DEFAULT '[]';
