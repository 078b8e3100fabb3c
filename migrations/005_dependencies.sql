-- 005: a job's dependencies (issue 14): the normalized requirement list it asked for, and
-- the install that provided them, written when the job finishes (like usage_json).

-- JSON array text of normalized requirements (src/requirements.c); NULL = none.
ALTER TABLE jobs ADD COLUMN dependencies TEXT
    CHECK (dependencies IS NULL OR (json_valid(dependencies) AND json_type(dependencies) = 'array'));
-- JSON object text {"environment", "cache_hit", "duration_ms"}; NULL = no install.
ALTER TABLE jobs ADD COLUMN install TEXT
    CHECK (install IS NULL OR (json_valid(install) AND json_type(install) = 'object'));
