-- shoebox local database, schema version 3.
-- This file is the schema exactly as shoeboxd creates it (daemon/store.c);
-- tests/unit/test_store.c fails when the two differ. docs/data-model.md
-- explains every table and column.
--
-- Conventions: ids are BLOBs (16-byte ids, 32-byte keys and hashes); times
-- are INTEGER milliseconds since the Unix epoch (UTC); an LWW register keeps
-- its winning stamp in two columns, <field>_hlc (the hybrid logical clock of
-- the write) and <field>_by (authors.ix of the writer); booleans are 0/1.
-- cursor_updated_at is the local change sequence that the feed cursor reads.

-- Facts about this device and its library: library_id, device_key, name, role.
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value BLOB
) WITHOUT ROWID;

-- A compact local number for every author key seen, so that stamps and dots
-- do not repeat 32-byte keys in every row. Never part of the state digest.
CREATE TABLE authors (
  ix INTEGER PRIMARY KEY,
  key BLOB NOT NULL UNIQUE
);

-- The signed log: every accepted entry of every member, as received.
CREATE TABLE entries (
  author_ix INTEGER NOT NULL REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  hash BLOB NOT NULL UNIQUE,
  hlc INTEGER NOT NULL,
  raw BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (author_ix, seq)
);
CREATE INDEX entries_hlc ON entries(hlc);

-- Per-author heads of the log: the highest contiguous seq and its hash.
CREATE TABLE heads (
  author_ix INTEGER PRIMARY KEY REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  hash BLOB NOT NULL
);

-- Valid entries waiting for their causal predecessors (an earlier seq of the
-- same author, or the device.add that admits their author).
CREATE TABLE pending_entries (
  author_ix INTEGER NOT NULL REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  hash BLOB NOT NULL,
  raw BLOB NOT NULL,
  received_at INTEGER NOT NULL,
  PRIMARY KEY (author_ix, seq)
);

-- Entries refused for good, with the reason `shoebox status` shows.
CREATE TABLE refused_entries (
  hash BLOB PRIMARY KEY,
  author_ix INTEGER REFERENCES authors(ix),
  seq INTEGER,
  reason TEXT NOT NULL,
  refused_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Two different entries signed by one author for one seq: a cloned or
-- compromised device.
CREATE TABLE forks (
  author_ix INTEGER NOT NULL REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  kept_hash BLOB NOT NULL,
  other_hash BLOB NOT NULL,
  detected_at INTEGER NOT NULL,
  PRIMARY KEY (author_ix, seq, other_hash)
) WITHOUT ROWID;

-- Member devices (the seed's Device). Membership and names come from the log.
CREATE TABLE devices (
  key BLOB PRIMARY KEY,
  name TEXT NOT NULL,
  role INTEGER NOT NULL DEFAULT 0,
  added_by INTEGER REFERENCES authors(ix),
  created_at INTEGER,
  removed INTEGER NOT NULL DEFAULT 0,
  removed_last_seq INTEGER,
  name_hlc INTEGER NOT NULL DEFAULT 0,
  name_by INTEGER NOT NULL DEFAULT 0,
  role_hlc INTEGER NOT NULL DEFAULT 0,
  role_by INTEGER NOT NULL DEFAULT 0,
  platform TEXT,
  model TEXT,
  app_version TEXT,
  last_seen_at INTEGER
) WITHOUT ROWID;

-- Photos (the seed's Photo plus the local columns CursorUpdatedAt, ThumbPath,
-- MediumPath). A row can exist before its photo.put arrives (an edit from
-- another device came first): put_hlc is NULL then, and listings skip it.
CREATE TABLE photos (
  id BLOB PRIMARY KEY,
  device_id BLOB,
  storage_key TEXT,
  hash BLOB,
  file_name TEXT,
  size_bytes INTEGER,
  captured_at INTEGER,
  uploaded_at INTEGER,
  width INTEGER,
  height INTEGER,
  mime_type TEXT,
  location_lat REAL,
  location_lon REAL,
  camera_make TEXT,
  camera_model TEXT,
  orientation INTEGER,
  favorite INTEGER NOT NULL DEFAULT 0,
  archived INTEGER NOT NULL DEFAULT 0,
  description TEXT,
  thumb_hash BLOB,
  medium_hash BLOB,
  is_deleted INTEGER NOT NULL DEFAULT 0,
  deleted_at INTEGER,
  updated_at INTEGER NOT NULL DEFAULT 0,
  put_hlc INTEGER,
  put_by INTEGER,
  captured_at_hlc INTEGER NOT NULL DEFAULT 0,
  captured_at_by INTEGER NOT NULL DEFAULT 0,
  location_hlc INTEGER NOT NULL DEFAULT 0,
  location_by INTEGER NOT NULL DEFAULT 0,
  file_name_hlc INTEGER NOT NULL DEFAULT 0,
  file_name_by INTEGER NOT NULL DEFAULT 0,
  favorite_hlc INTEGER NOT NULL DEFAULT 0,
  favorite_by INTEGER NOT NULL DEFAULT 0,
  archived_hlc INTEGER NOT NULL DEFAULT 0,
  archived_by INTEGER NOT NULL DEFAULT 0,
  description_hlc INTEGER NOT NULL DEFAULT 0,
  description_by INTEGER NOT NULL DEFAULT 0,
  thumb_hlc INTEGER NOT NULL DEFAULT 0,
  thumb_by INTEGER NOT NULL DEFAULT 0,
  medium_hlc INTEGER NOT NULL DEFAULT 0,
  medium_by INTEGER NOT NULL DEFAULT 0,
  deleted_hlc INTEGER NOT NULL DEFAULT 0,
  deleted_by INTEGER NOT NULL DEFAULT 0,
  cursor_updated_at INTEGER NOT NULL DEFAULT 0,
  thumb_path TEXT,
  medium_path TEXT
);
CREATE INDEX photos_gallery ON photos(captured_at DESC, id) WHERE put_hlc IS NOT NULL AND is_deleted = 0;
CREATE INDEX photos_cursor ON photos(cursor_updated_at);

-- Albums (the seed's Album). Like photos, a row can precede its create.
CREATE TABLE albums (
  id BLOB PRIMARY KEY,
  name TEXT,
  cover_photo_id BLOB,
  created_at INTEGER,
  updated_at INTEGER NOT NULL DEFAULT 0,
  is_deleted INTEGER NOT NULL DEFAULT 0,
  deleted_at INTEGER,
  create_hlc INTEGER,
  create_by INTEGER,
  name_hlc INTEGER NOT NULL DEFAULT 0,
  name_by INTEGER NOT NULL DEFAULT 0,
  cover_hlc INTEGER NOT NULL DEFAULT 0,
  cover_by INTEGER NOT NULL DEFAULT 0,
  deleted_hlc INTEGER NOT NULL DEFAULT 0,
  deleted_by INTEGER NOT NULL DEFAULT 0,
  cursor_updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX albums_cursor ON albums(cursor_updated_at);

-- Album membership (the seed's AlbumItem): an add-wins set. A pair is a
-- member while at least one of its add dots is not removed; the position is
-- an LWW register that outlives a removal.
CREATE TABLE album_items (
  album_id BLOB NOT NULL REFERENCES albums(id),
  photo_id BLOB NOT NULL REFERENCES photos(id),
  present INTEGER NOT NULL DEFAULT 0,
  position REAL,
  added_at INTEGER,
  position_hlc INTEGER NOT NULL DEFAULT 0,
  position_by INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (album_id, photo_id)
) WITHOUT ROWID;
CREATE INDEX album_items_order ON album_items(album_id, position, photo_id) WHERE present = 1;
CREATE INDEX album_items_photo ON album_items(photo_id);

CREATE TABLE album_item_dots (
  album_id BLOB NOT NULL,
  photo_id BLOB NOT NULL,
  author_ix INTEGER NOT NULL REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hlc INTEGER NOT NULL DEFAULT 0,
  added INTEGER NOT NULL DEFAULT 0,
  removed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (album_id, photo_id, author_ix, seq, idx)
) WITHOUT ROWID;

-- Tags (the seed's Tag). A tag's id derives from its label, so two devices
-- creating the same label create the same tag.
CREATE TABLE tags (
  id BLOB PRIMARY KEY,
  label TEXT,
  created_at INTEGER,
  label_hlc INTEGER NOT NULL DEFAULT 0,
  label_by INTEGER NOT NULL DEFAULT 0,
  cursor_updated_at INTEGER NOT NULL DEFAULT 0
);

-- The seed's PhotoTag: an add-wins set, like album membership.
CREATE TABLE photo_tags (
  photo_id BLOB NOT NULL REFERENCES photos(id),
  tag_id BLOB NOT NULL REFERENCES tags(id),
  present INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (photo_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX photo_tags_tag ON photo_tags(tag_id) WHERE present = 1;

CREATE TABLE photo_tag_dots (
  photo_id BLOB NOT NULL,
  tag_id BLOB NOT NULL,
  author_ix INTEGER NOT NULL REFERENCES authors(ix),
  seq INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  added INTEGER NOT NULL DEFAULT 0,
  removed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (photo_id, tag_id, author_ix, seq, idx)
) WITHOUT ROWID;

-- Share links (the seed's ShareLink). Created and revoked through the log,
-- so any device of the library can serve them.
CREATE TABLE share_links (
  id BLOB PRIMARY KEY,
  album_id BLOB,
  photo_id BLOB,
  token TEXT,
  expires_at INTEGER,
  created_at INTEGER,
  created_by INTEGER REFERENCES authors(ix),
  revoked_at INTEGER,
  cursor_updated_at INTEGER NOT NULL DEFAULT 0
);

-- Local hash-first ingest sessions (the seed's UploadSession), used by apps
-- on this device through the local API.
CREATE TABLE upload_sessions (
  id BLOB PRIMARY KEY,
  device_id BLOB NOT NULL,
  hash BLOB NOT NULL,
  size_bytes INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  file_name TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending', 'uploading', 'completed', 'failed')),
  created_at INTEGER NOT NULL,
  completed_at INTEGER,
  error TEXT
);

-- The seed's offline queue: work that waits for a peer or a retry time
-- (originals to get to a full peer, transfers to resume), with backoff.
CREATE TABLE pending_uploads (
  upload_session_id BLOB PRIMARY KEY,
  hash BLOB NOT NULL,
  state TEXT NOT NULL,
  retry_at INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pending_uploads_retry ON pending_uploads(retry_at);

-- The seed's SyncState singleton: the local change sequence (the feed
-- cursor's position) and the clock.
CREATE TABLE sync_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  cursor INTEGER NOT NULL DEFAULT 0,
  hlc INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL DEFAULT 0
);

-- Peers this device knows how to reach, and how that went.
CREATE TABLE peers (
  device_key BLOB PRIMARY KEY,
  last_seen_at INTEGER,
  last_error TEXT,
  failures INTEGER NOT NULL DEFAULT 0,
  retry_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE peer_addresses (
  device_key BLOB NOT NULL,
  address TEXT NOT NULL,
  source TEXT NOT NULL,
  last_ok_at INTEGER,
  PRIMARY KEY (device_key, address)
) WITHOUT ROWID;

-- Content-addressed blobs (originals, thumbnails, mediums) held here or
-- known of, with the SHA-256 of every fixed-size chunk.
CREATE TABLE blobs (
  hash BLOB PRIMARY KEY,
  size_bytes INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('original', 'thumb', 'medium')),
  complete INTEGER NOT NULL DEFAULT 0,
  stored_at INTEGER,
  last_access_at INTEGER
) WITHOUT ROWID;

CREATE TABLE blob_chunks (
  hash BLOB NOT NULL,
  idx INTEGER NOT NULL,
  chunk_hash BLOB NOT NULL,
  have INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (hash, idx)
) WITHOUT ROWID;

-- Which member holds which original, from blob.held / blob.dropped ops: an
-- LWW register per (hash, holder).
CREATE TABLE blob_holders (
  hash BLOB NOT NULL,
  holder_ix INTEGER NOT NULL REFERENCES authors(ix),
  held INTEGER NOT NULL,
  held_hlc INTEGER NOT NULL,
  PRIMARY KEY (hash, holder_ix)
) WITHOUT ROWID;
CREATE INDEX blob_holders_holder ON blob_holders(holder_ix);

-- Import progress per device (ImportJob), so a killed import resumes
-- (docs/import.md). A job is identified by its sorted paths; each file it
-- finished has a row (size and mtime let a resumed job skip it unread).
-- 'applying' marks files whose photo.put is being written: found in the
-- library on resume, they count as imported, not as duplicates.
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

-- The render queue (migration 4, daemon/render.c, docs/import.md): photos
-- this device imported whose thumbnail and medium are still to be rendered.
-- A row is written with its file's `applying` row, before the photo.put, and
-- only rows whose photo is in the library are rendered; it is deleted once
-- the photo.set thumb / medium ops are written. 'failed' keeps the reason
-- of an image that cannot be rendered, so it is not tried again.
CREATE TABLE render_queue (
  photo_id BLOB PRIMARY KEY,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
  error TEXT,
  queued_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX render_queue_state ON render_queue(state);
