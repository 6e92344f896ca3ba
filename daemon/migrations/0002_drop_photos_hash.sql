-- Migration 2: nothing looks photos up by hash (a photo's id derives from its
-- hash: sbx_photo_id_for_hash), and the index cost a fifth of the time of
-- applying a large import (measured by tests/bench/bench_engine.c).
DROP INDEX IF EXISTS photos_hash;
