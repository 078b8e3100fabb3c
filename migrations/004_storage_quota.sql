-- 004: a storage quota (issue 11). Each job counts the bytes it holds; one row keeps
-- their total and the part eviction could free, maintained by triggers in the
-- transaction that changes a job, so a check reads one row instead of summing the table.

-- What the job holds: its script and inputs, its result and error text, its output.
ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
-- The parts of stored_bytes that evicting the output, or the result, frees.
ALTER TABLE jobs ADD COLUMN output_stored_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN result_stored_bytes INTEGER NOT NULL DEFAULT 0;
-- Set when the quota (or a full disk) took the output or the result of this finished job.
ALTER TABLE jobs ADD COLUMN output_evicted INTEGER NOT NULL DEFAULT 0
    CHECK (output_evicted IN (0, 1));
ALTER TABLE jobs ADD COLUMN result_evicted INTEGER NOT NULL DEFAULT 0
    CHECK (result_evicted IN (0, 1));

-- Jobs stored by older builds: counted once here, the same way src/store_sqlite_jobs.c and
-- src/store_sqlite_output.c count.
UPDATE jobs SET output_stored_bytes =
    (SELECT COALESCE(SUM(length(data)), 0) FROM job_output WHERE job_output.job_id = jobs.id),
    result_stored_bytes = COALESCE(length(CAST(result_json AS BLOB)), 0);
UPDATE jobs SET stored_bytes = length(CAST(script AS BLOB)) + length(CAST(inputs_json AS BLOB))
    + result_stored_bytes + COALESCE(length(CAST(error_message AS BLOB)), 0)
    + COALESCE(length(CAST(error_traceback AS BLOB)), 0) + output_stored_bytes;

-- evictable_bytes: the output and results of finished jobs (a running job's are not yet).
CREATE TABLE storage_usage (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    used_bytes      INTEGER NOT NULL,
    evictable_bytes INTEGER NOT NULL
);
INSERT INTO storage_usage (id, used_bytes, evictable_bytes)
    SELECT 1, COALESCE(SUM(stored_bytes), 0),
           COALESCE(SUM(CASE WHEN finished_at_ms IS NULL THEN 0
                             ELSE output_stored_bytes + result_stored_bytes END), 0)
      FROM jobs;

-- A job is inserted queued (nothing evictable yet).
CREATE TRIGGER jobs_storage_insert AFTER INSERT ON jobs WHEN NEW.stored_bytes <> 0
BEGIN
    UPDATE storage_usage SET used_bytes = used_bytes + NEW.stored_bytes WHERE id = 1;
END;
CREATE TRIGGER jobs_storage_update
    AFTER UPDATE OF stored_bytes, finished_at_ms, output_stored_bytes, result_stored_bytes ON jobs
    WHEN NEW.stored_bytes <> OLD.stored_bytes OR NEW.finished_at_ms IS NOT OLD.finished_at_ms
      OR NEW.output_stored_bytes <> OLD.output_stored_bytes
      OR NEW.result_stored_bytes <> OLD.result_stored_bytes
BEGIN
    UPDATE storage_usage SET
        used_bytes = used_bytes + NEW.stored_bytes - OLD.stored_bytes,
        evictable_bytes = evictable_bytes
            + CASE WHEN NEW.finished_at_ms IS NULL THEN 0
                   ELSE NEW.output_stored_bytes + NEW.result_stored_bytes END
            - CASE WHEN OLD.finished_at_ms IS NULL THEN 0
                   ELSE OLD.output_stored_bytes + OLD.result_stored_bytes END
     WHERE id = 1;
END;
CREATE TRIGGER jobs_storage_delete AFTER DELETE ON jobs
BEGIN
    UPDATE storage_usage SET
        used_bytes = used_bytes - OLD.stored_bytes,
        evictable_bytes = evictable_bytes
            - CASE WHEN OLD.finished_at_ms IS NULL THEN 0
                   ELSE OLD.output_stored_bytes + OLD.result_stored_bytes END
     WHERE id = 1;
END;

-- Eviction takes the oldest finished jobs first (finish time, then insertion order); only
-- jobs that still hold something to evict are in these indexes.
CREATE INDEX jobs_output_evictable ON jobs (finished_at_ms, seq)
    WHERE finished_at_ms IS NOT NULL AND output_stored_bytes > 0;
CREATE INDEX jobs_result_evictable ON jobs (finished_at_ms, seq)
    WHERE finished_at_ms IS NOT NULL AND result_stored_bytes > 0;
