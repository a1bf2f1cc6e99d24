-- CDC support.
--
-- Replica identity: the CDC tables keep REPLICA IDENTITY DEFAULT (primary key).
-- Updates and deletes then carry the key of the old row, not the whole old row;
-- FULL would log every old column for every update and is not needed by the
-- consumers, which compare inputs themselves.
--
-- Heartbeat: on an idle database no change for the captured tables reaches the
-- slot, so its confirmed position cannot move while other databases on the
-- cluster (or checkpoints) keep producing WAL, and the slot pins WAL. The CDC
-- reader updates this single row on a timer; the change flows through the
-- slot, the reader confirms it, and the slot advances. The reader does not
-- publish these changes to a topic.

CREATE TABLE IF NOT EXISTS cdc_heartbeat (
    id      SMALLINT    PRIMARY KEY DEFAULT 1,
    beat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lsn     PG_LSN,
    CONSTRAINT cdc_heartbeat_single_row_check CHECK (id = 1)
);

COMMENT ON TABLE cdc_heartbeat IS
    'Single row (id = 1) the CDC reader updates periodically so the logical replication slot advances on idle databases. Not published to Kafka.';
COMMENT ON COLUMN cdc_heartbeat.beat_at IS 'Time of the last heartbeat write';
COMMENT ON COLUMN cdc_heartbeat.lsn IS
    'pg_current_wal_lsn() at the last heartbeat, for lag diagnostics; NULL until the first beat';

INSERT INTO cdc_heartbeat (id, beat_at, lsn) VALUES (1, now(), NULL)
ON CONFLICT (id) DO NOTHING;

-- Example heartbeat, as issued by the reader:
--   UPDATE cdc_heartbeat SET beat_at = now(), lsn = pg_current_wal_lsn() WHERE id = 1;
