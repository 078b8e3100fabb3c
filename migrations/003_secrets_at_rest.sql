-- 003: secrets leave the store when their job ends (issue 10). env_vars values (often
-- secrets) are kept only while a job may still run; a final job keeps their names, which
-- GET shows, with null values. Idempotency compares a SHA-256 of the canonical request
-- instead of the request itself, which carried those values.
-- executord_sha256() is registered by src/store_sqlite.c on the connection that migrates.

ALTER TABLE jobs ADD COLUMN request_sha256 TEXT; -- hex; NULL when no Idempotency-Key
UPDATE jobs SET request_sha256 = executord_sha256(request_json) WHERE request_json IS NOT NULL;
-- Rewrites every row without the column; secure_delete (on for the store's connections)
-- zeroes the space the old rows leave behind.
ALTER TABLE jobs DROP COLUMN request_json;

-- The same expression as ENV_ERASED in src/store_sqlite_jobs.c, applied to the jobs already final.
UPDATE jobs
   SET env_json = CASE WHEN json_valid(env_json) THEN
                       CASE WHEN json_type(env_json) = 'object'
                            THEN (SELECT json_group_object(key, NULL) FROM json_each(env_json))
                            ELSE '{}' END
                  ELSE '{}' END
 WHERE status IN ('succeeded', 'failed', 'timed_out', 'cancelled') AND env_json <> '{}';

-- Space freed before this version (deleted jobs, rows rewritten without secure_delete)
-- may still hold old secrets: src/store_sqlite.c VACUUMs once while this table exists, then
-- drops it. A VACUUM cannot run inside this migration's transaction.
CREATE TABLE vacuum_pending (reason TEXT NOT NULL);
INSERT INTO vacuum_pending VALUES ('003_secrets_at_rest.sql');
