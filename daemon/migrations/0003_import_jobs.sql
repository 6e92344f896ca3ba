-- Migration 3: import jobs that resume. Each file of a job keeps its size and
-- modification time, so a resumed import skips the files it already finished
-- without reading them again, and a failed job records why it stopped.
-- Nothing wrote these two tables before this version, so they are made
-- again rather than altered.
DROP TABLE IF EXISTS import_job_files;
DROP TABLE IF EXISTS import_jobs;

CREATE TABLE import_jobs (
  id BLOB PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
  paths TEXT NOT NULL,
  files_total INTEGER NOT NULL DEFAULT 0,
  files_done INTEGER NOT NULL DEFAULT 0,
  bytes_total INTEGER NOT NULL DEFAULT 0,
  bytes_done INTEGER NOT NULL DEFAULT 0,
  imported INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER,
  error TEXT
);
CREATE INDEX import_jobs_paths ON import_jobs(paths, status);

CREATE TABLE import_job_files (
  job_id BLOB NOT NULL REFERENCES import_jobs(id),
  path TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('applying', 'imported', 'duplicate', 'skipped')),
  error TEXT,
  size_bytes INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  PRIMARY KEY (job_id, path)
) WITHOUT ROWID;
