-- Incremental snapshots of captured tables while the reader streams.
--
-- cdc_signals: one row per table to (re)snapshot. `cdc-reader snapshot --tables …` inserts
-- them (or an INSERT by hand); the reader sees the insert in its replication stream and copies
-- the table in primary-key chunks between two watermarks (logical messages), so that no row it
-- reads can overtake a newer change of the same key. Progress is recorded in the row once the
-- broker has acknowledged a chunk, so a restarted reader resumes where it was.
--
-- cdc_captured_tables: the tables each slot has captured; a table that appears in CDC_TABLES
-- on an existing slot is snapshotted this way automatically.

CREATE TABLE IF NOT EXISTS cdc_signals (
    id          bigserial PRIMARY KEY,
    slot        text NOT NULL,
    type        text NOT NULL DEFAULT 'execute-snapshot'
                CONSTRAINT cdc_signals_type_check CHECK (type IN ('execute-snapshot')),
    table_name  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_key    jsonb,
    rows_sent   bigint NOT NULL DEFAULT 0,
    finished_at timestamptz,
    error       text
);

CREATE INDEX IF NOT EXISTS idx_cdc_signals_pending ON cdc_signals (slot, id) WHERE finished_at IS NULL;

COMMENT ON TABLE cdc_signals IS
    'CDC 증분 스냅샷 요청: 행 하나가 테이블 하나. cdc-reader snapshot --tables 가 넣고, 리더가 스트리밍 중에 기본 키 순서의 청크로 복사하며 last_key/rows_sent/finished_at 에 진행을 기록한다.';
COMMENT ON COLUMN cdc_signals.last_key IS '브로커가 확인한 마지막 청크의 마지막 기본 키(JSON, 토픽 키와 같은 모양).';

CREATE TABLE IF NOT EXISTS cdc_captured_tables (
    slot       text NOT NULL,
    table_name text NOT NULL,
    since      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (slot, table_name)
);

COMMENT ON TABLE cdc_captured_tables IS
    '슬롯마다 캡처해 온 테이블. CDC_TABLES 에 새로 추가된 테이블은 증분 스냅샷으로 기존 행이 복사된다.';
