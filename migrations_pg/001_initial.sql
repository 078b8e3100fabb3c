-- 001 (PostgreSQL): the data model of SQLite's migrations 001-005 in one file, plus what
-- replicas sharing this database need: which replica runs a job, a cancel asked of it,
-- and the replicas' leases. Applied by src/store_pg.c inside one transaction under an
-- advisory lock and recorded in schema_migrations. Times are Unix ms (BIGINT); JSON is
-- kept as TEXT exactly as written, so reads give back the text the store was given.

-- seq: the queue order (oldest queued first) and the list cursor (newest first); never
-- reused, so cursors stay stable.
CREATE TABLE jobs (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    status              TEXT    NOT NULL
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                          'timed_out', 'cancelled')),
    backend             TEXT    NOT NULL,
    created_at_ms       BIGINT  NOT NULL,
    started_at_ms       BIGINT,             -- NULL until running
    finished_at_ms      BIGINT,             -- NULL until final

    -- the request, as accepted
    script              TEXT    NOT NULL,
    inputs_json         TEXT    NOT NULL DEFAULT '{}',
    env_json            TEXT    NOT NULL DEFAULT '{}', -- values erased when final
    labels_json         TEXT    NOT NULL DEFAULT '{}',
    allow_network       BOOLEAN NOT NULL DEFAULT false,
    timeout_seconds     DOUBLE PRECISION NOT NULL,
    memory_mb           BIGINT  NOT NULL,
    cpu_seconds         BIGINT  NOT NULL,
    max_processes       BIGINT  NOT NULL,
    max_file_size_mb    BIGINT  NOT NULL,
    max_open_files      BIGINT  NOT NULL,
    max_output_bytes    BIGINT  NOT NULL,
    dependencies        TEXT,               -- JSON array text; NULL = none
    idempotency_key     TEXT    UNIQUE,     -- unique across every replica
    request_sha256      TEXT,               -- hex digest of the request; NULL without a key

    -- the outcome
    result_json         TEXT,
    error_type          TEXT,
    error_message       TEXT,
    error_traceback     TEXT,
    exit_code           INTEGER,
    signal              INTEGER,
    usage_json          TEXT,
    install             TEXT,               -- JSON object text; NULL = no install
    stdout_bytes        BIGINT  NOT NULL DEFAULT 0,
    stderr_bytes        BIGINT  NOT NULL DEFAULT 0,
    stdout_truncated    BOOLEAN NOT NULL DEFAULT false,
    stderr_truncated    BOOLEAN NOT NULL DEFAULT false,

    -- the storage quota (SQLite's 004)
    stored_bytes        BIGINT  NOT NULL DEFAULT 0,
    output_stored_bytes BIGINT  NOT NULL DEFAULT 0,
    result_stored_bytes BIGINT  NOT NULL DEFAULT 0,
    output_evicted      BOOLEAN NOT NULL DEFAULT false,
    result_evicted      BOOLEAN NOT NULL DEFAULT false,

    -- replicas: the replica running the job (NULL unless running), and whether a cancel
    -- was asked of it
    running_on          TEXT,
    cancel_requested    BOOLEAN NOT NULL DEFAULT false,

    CHECK ((status IN ('queued', 'running')) = (finished_at_ms IS NULL)),
    CHECK (status <> 'queued' OR started_at_ms IS NULL)
);

CREATE INDEX jobs_status_seq ON jobs (status, seq);
CREATE INDEX jobs_status_backend ON jobs (status, backend);
CREATE INDEX jobs_finished_at ON jobs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
CREATE INDEX jobs_running_on ON jobs (running_on) WHERE status = 'running';
CREATE INDEX jobs_output_evictable ON jobs (finished_at_ms, seq)
    WHERE finished_at_ms IS NOT NULL AND output_stored_bytes > 0;
CREATE INDEX jobs_result_evictable ON jobs (finished_at_ms, seq)
    WHERE finished_at_ms IS NOT NULL AND result_stored_bytes > 0;

-- One row per label key of a job, for indexed label filters.
CREATE TABLE job_labels (
    job_seq BIGINT NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    key     TEXT   NOT NULL,
    value   TEXT   NOT NULL,
    PRIMARY KEY (job_seq, key)
);
CREATE INDEX job_labels_key_value ON job_labels (key, value, job_seq);

-- stdout (1) / stderr (2) as chunks; start_offset = bytes of the stream before the chunk.
CREATE TABLE job_output (
    job_id       TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stream       INTEGER NOT NULL CHECK (stream IN (1, 2)),
    start_offset BIGINT  NOT NULL CHECK (start_offset >= 0),
    data         BYTEA   NOT NULL,
    PRIMARY KEY (job_id, stream, start_offset)
);

-- The totals the quota reads (one row), kept by the triggers below in the transaction
-- that changes a job. evictable_bytes: output and results of finished jobs.
CREATE TABLE storage_usage (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    used_bytes      BIGINT NOT NULL,
    evictable_bytes BIGINT NOT NULL
);
INSERT INTO storage_usage (id, used_bytes, evictable_bytes) VALUES (1, 0, 0);

CREATE FUNCTION executord_evictable(finished BIGINT, output_b BIGINT, result_b BIGINT)
RETURNS BIGINT LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN finished IS NULL THEN 0 ELSE output_b + result_b END $$;

CREATE FUNCTION executord_storage_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE storage_usage SET used_bytes = used_bytes + NEW.stored_bytes WHERE id = 1;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE storage_usage SET
            used_bytes = used_bytes + NEW.stored_bytes - OLD.stored_bytes,
            evictable_bytes = evictable_bytes
                + executord_evictable(NEW.finished_at_ms, NEW.output_stored_bytes,
                                      NEW.result_stored_bytes)
                - executord_evictable(OLD.finished_at_ms, OLD.output_stored_bytes,
                                      OLD.result_stored_bytes)
         WHERE id = 1;
        RETURN NEW;
    END IF;
    UPDATE storage_usage SET
        used_bytes = used_bytes - OLD.stored_bytes,
        evictable_bytes = evictable_bytes
            - executord_evictable(OLD.finished_at_ms, OLD.output_stored_bytes,
                                  OLD.result_stored_bytes)
     WHERE id = 1;
    RETURN OLD;
END $$;

CREATE TRIGGER jobs_storage_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.stored_bytes <> 0) EXECUTE FUNCTION executord_storage_trigger();
CREATE TRIGGER jobs_storage_update
    AFTER UPDATE OF stored_bytes, finished_at_ms, output_stored_bytes, result_stored_bytes
    ON jobs FOR EACH ROW
    WHEN (NEW.stored_bytes <> OLD.stored_bytes
          OR NEW.finished_at_ms IS DISTINCT FROM OLD.finished_at_ms
          OR NEW.output_stored_bytes <> OLD.output_stored_bytes
          OR NEW.result_stored_bytes <> OLD.result_stored_bytes)
    EXECUTE FUNCTION executord_storage_trigger();
CREATE TRIGGER jobs_storage_delete AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION executord_storage_trigger();

-- What env_json becomes when its job is final: the names stay, in order, the values
-- (secrets) do not: {"API_KEY":null}, compact like SQLite's json_group_object. Anything
-- but a JSON object (never stored) becomes {}.
CREATE FUNCTION executord_env_erased(env TEXT) RETURNS TEXT LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    out TEXT;
BEGIN
    IF env IS NULL OR json_typeof(env::json) <> 'object' THEN
        RETURN '{}';
    END IF;
    SELECT '{' || string_agg(to_json(e.key)::text || ':null', ',' ORDER BY e.n) || '}'
      INTO out FROM json_each(env::json) WITH ORDINALITY AS e(key, value, n);
    RETURN COALESCE(out, '{}');
EXCEPTION WHEN others THEN
    RETURN '{}';
END $$;

-- The replicas sharing this database: each renews its lease (heartbeat); survivors end the
-- running jobs of one whose lease expired.
CREATE TABLE replicas (
    id             TEXT PRIMARY KEY,
    lease_until_ms BIGINT NOT NULL,
    started_at_ms  BIGINT NOT NULL
);
