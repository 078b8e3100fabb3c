-- 001: jobs, their labels (for indexed label filters) and their output chunks.
-- Applied by src/migrate.c inside one transaction and recorded in schema_migrations.

-- One row per submitted job. seq is the insertion order: the queue order (oldest queued
-- first) and the list cursor (newest first, seq < cursor). AUTOINCREMENT so a seq is
-- never reused after deletes, which keeps cursors stable.
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                       'timed_out', 'cancelled')),
    backend          TEXT    NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    started_at_ms    INTEGER,            -- NULL until running
    finished_at_ms   INTEGER,            -- NULL until final

    -- the request, as accepted
    script           TEXT    NOT NULL,
    inputs_json      TEXT    NOT NULL DEFAULT '{}',
    env_json         TEXT    NOT NULL DEFAULT '{}',
    labels_json      TEXT    NOT NULL DEFAULT '{}',
    allow_network    INTEGER NOT NULL DEFAULT 0 CHECK (allow_network IN (0, 1)),
    timeout_seconds  REAL    NOT NULL,
    memory_mb        INTEGER NOT NULL,
    cpu_seconds      INTEGER NOT NULL,
    max_processes    INTEGER NOT NULL,
    max_file_size_mb INTEGER NOT NULL,
    max_open_files   INTEGER NOT NULL,
    max_output_bytes INTEGER NOT NULL,
    idempotency_key  TEXT    UNIQUE,     -- NULL when none; UNIQUE ignores NULLs
    request_json     TEXT,               -- canonical body, compared on key reuse

    -- the outcome
    result_json      TEXT,
    error_type       TEXT,
    error_message    TEXT,
    error_traceback  TEXT,
    exit_code        INTEGER,            -- NULL: did not exit normally / not yet known
    signal           INTEGER,            -- NULL: none
    usage_json       TEXT,
    stdout_bytes     INTEGER NOT NULL DEFAULT 0,
    stderr_bytes     INTEGER NOT NULL DEFAULT 0,
    stdout_truncated INTEGER NOT NULL DEFAULT 0 CHECK (stdout_truncated IN (0, 1)),
    stderr_truncated INTEGER NOT NULL DEFAULT 0 CHECK (stderr_truncated IN (0, 1)),

    -- a final job has its finish time; a queued one has not started
    CHECK ((status IN ('queued', 'running')) = (finished_at_ms IS NULL)),
    CHECK (status <> 'queued' OR started_at_ms IS NULL)
);

-- Claim the oldest queued job; list/count by status newest first.
CREATE INDEX jobs_status_seq ON jobs (status, seq);
-- Retention: finished jobs older than a cutoff.
CREATE INDEX jobs_finished_at ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;

-- The labels of each job, one row per key, copied from jobs.labels_json on insert. A
-- table (not json_extract on a JSON path) so any key, including ones with dots or
-- quotes, matches exactly, and so a label filter is an index range scan.
CREATE TABLE job_labels (
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (job_seq, key)
) WITHOUT ROWID;
CREATE INDEX job_labels_key_value ON job_labels (key, value, job_seq);

-- stdout (1) / stderr (2) of a job as chunks in write order. start_offset is the number
-- of bytes of that stream before the chunk, so a read from byte N starts at one seek.
CREATE TABLE job_output (
    job_id       TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stream       INTEGER NOT NULL CHECK (stream IN (1, 2)),
    start_offset INTEGER NOT NULL CHECK (start_offset >= 0),
    data         BLOB    NOT NULL,
    PRIMARY KEY (job_id, stream, start_offset)
); -- a rowid table: chunks can be large, which WITHOUT ROWID handles badly
