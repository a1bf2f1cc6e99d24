-- Image assets: files under the asset root plus free-form JSON metadata that
-- users own and the asset worker enriches.
--
-- Enrichment merges its keys into metadata (never replaces the document) and
-- skips soft-deleted rows (deleted_at IS NOT NULL).

CREATE TABLE IF NOT EXISTS image_assets (
    id                UUID        PRIMARY KEY DEFAULT uuidv7(),
    file_name         TEXT        NOT NULL,
    file_path         TEXT        NOT NULL,
    width             INTEGER,
    height            INTEGER,
    metadata          JSONB,
    enrichment_status TEXT        NOT NULL DEFAULT 'pending',
    enrichment_error  TEXT,
    enriched_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at        TIMESTAMPTZ,

    CONSTRAINT image_assets_dimensions_check
        CHECK ((width IS NULL OR width > 0) AND (height IS NULL OR height > 0)),
    CONSTRAINT image_assets_metadata_object_check
        CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object'),
    CONSTRAINT image_assets_enrichment_status_check
        CHECK (enrichment_status IN ('pending', 'done', 'error', 'skipped'))
);

COMMENT ON TABLE image_assets IS
    '이미지 에셋: 파일 위치, 크기, 사용자/워커가 함께 쓰는 JSON 메타데이터. deleted_at이 있으면 소프트 삭제된 행';
COMMENT ON COLUMN image_assets.file_name IS '파일 이름(예: hero_char_diffuse.exr)';
COMMENT ON COLUMN image_assets.file_path IS '파일이 있는 디렉터리(예: /assets/textures/hero/). file_path와 file_name을 이어 붙이면 파일 경로';
COMMENT ON COLUMN image_assets.width IS '픽셀 너비. 모르면 NULL(워커가 파일을 읽어 채움)';
COMMENT ON COLUMN image_assets.height IS '픽셀 높이. 모르면 NULL(워커가 파일을 읽어 채움)';
COMMENT ON COLUMN image_assets.metadata IS
    '자유 형식 JSON 객체. 사용자 키는 보존되고, 보강 결과는 최상위 키 병합(metadata || patch)으로 더해짐. NULL 가능';
COMMENT ON COLUMN image_assets.enrichment_status IS
    'pending(대기) | done(보강 완료) | error(enrichment_error에 사유) | skipped(삭제됨/지원하지 않는 형식 등)';
COMMENT ON COLUMN image_assets.enrichment_error IS '마지막 보강 실패 사유. 성공하면 NULL';
COMMENT ON COLUMN image_assets.enriched_at IS '마지막 보강 결과를 기록한 시각';
COMMENT ON COLUMN image_assets.deleted_at IS '소프트 삭제 시각. NULL이면 살아 있는 에셋';

CREATE OR REPLACE TRIGGER image_assets_set_updated_at
    BEFORE UPDATE ON image_assets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Containment search on user/enriched metadata, e.g.
--   WHERE metadata @> '{"format":"EXR"}' AND deleted_at IS NULL
CREATE INDEX IF NOT EXISTS idx_image_assets_metadata
    ON image_assets USING GIN (metadata jsonb_path_ops);

COMMENT ON INDEX idx_image_assets_metadata IS
    'jsonb_path_ops GIN: serves metadata @> ''{"format":"EXR"}'' (containment only)';

-- Exact lookups by file name (file_name = $1).
CREATE INDEX IF NOT EXISTS idx_image_assets_file_name ON image_assets (file_name);

-- Paging over live assets, newest first. Ordering by id (uuidv7, time-ordered)
-- walks the primary key backwards and filters deleted rows on the way; ordering
-- by created_at uses this partial index, which holds live rows only:
--   WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $n
CREATE INDEX IF NOT EXISTS idx_image_assets_live_created
    ON image_assets (created_at DESC, id DESC) WHERE deleted_at IS NULL;

COMMENT ON INDEX idx_image_assets_live_created IS
    'Query form: WHERE deleted_at IS NULL ORDER BY created_at DESC, id DESC (keyset: AND (created_at, id) < ($t, $id))';

-- Purging soft-deleted rows after a retention period:
--   WHERE deleted_at IS NOT NULL AND deleted_at < now() - interval '30 days'
CREATE INDEX IF NOT EXISTS idx_image_assets_deleted_at
    ON image_assets (deleted_at) WHERE deleted_at IS NOT NULL;

-- Live rows still waiting for (or retrying) enrichment, in id order.
CREATE INDEX IF NOT EXISTS idx_image_assets_enrichment_pending
    ON image_assets (id) WHERE enrichment_status IN ('pending', 'error') AND deleted_at IS NULL;

COMMENT ON INDEX idx_image_assets_enrichment_pending IS
    'Query form: WHERE enrichment_status IN (''pending'', ''error'') AND deleted_at IS NULL ORDER BY id';

-- Substring search on file names (file_name ILIKE '%hero%') needs a trigram
-- index. pg_trgm ships with PostgreSQL's contrib and is a trusted extension;
-- where it is unavailable or may not be created, the index is skipped and the
-- search falls back to a scan.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            CREATE INDEX IF NOT EXISTS idx_image_assets_file_name_trgm
                ON image_assets USING GIN (file_name gin_trgm_ops);
        EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
            RAISE NOTICE 'pg_trgm not usable (%); skipping idx_image_assets_file_name_trgm', SQLERRM;
        END;
    ELSE
        RAISE NOTICE 'pg_trgm not available; skipping idx_image_assets_file_name_trgm';
    END IF;
END
$$;
