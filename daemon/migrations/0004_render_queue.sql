-- Migration 4: the render queue. An import no longer renders thumbnails and
-- mediums inline: it queues each new photo whose type can be rendered, in
-- the transaction that marks its file `applying` (before its photo.put), and
-- returns once the originals and the photo records are durable. A background
-- renderer (daemon/render.c) takes the pending rows whose photo is in the
-- library and still has no thumbnail, writes photo.set thumb / medium for a
-- batch of them in one engine write, then deletes their rows. A photo that
-- cannot be rendered (a corrupt image) keeps its row as 'failed' with the
-- reason, and is not tried again.
CREATE TABLE render_queue (
  photo_id BLOB PRIMARY KEY,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
  error TEXT,
  queued_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX render_queue_state ON render_queue(state);
