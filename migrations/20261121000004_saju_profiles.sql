-- Saju profiles: the user's birth input, the eight pillar codes and the cached
-- analysis written back by the analyzer.
--
-- The analyzer reads changes from the CDC topic cdc.public.saju_profiles and
-- writes analysis_* back in batches; it decides itself whether the inputs
-- changed, so nothing here fires on input edits.

CREATE TABLE IF NOT EXISTS saju_profiles (
    id               UUID        PRIMARY KEY DEFAULT uuidv7(),
    name             TEXT        NOT NULL,
    gender           CHAR(1),
    birth_date       TIMESTAMPTZ NOT NULL,
    is_solar         BOOLEAN     NOT NULL DEFAULT TRUE,
    is_leap_month    BOOLEAN     NOT NULL DEFAULT FALSE,

    year_gan         SMALLINT    REFERENCES ganji_metadata (code),
    year_ji          SMALLINT    REFERENCES ganji_metadata (code),
    month_gan        SMALLINT    REFERENCES ganji_metadata (code),
    month_ji         SMALLINT    REFERENCES ganji_metadata (code),
    day_gan          SMALLINT    REFERENCES ganji_metadata (code),
    day_ji           SMALLINT    REFERENCES ganji_metadata (code),
    hour_gan         SMALLINT    REFERENCES ganji_metadata (code),
    hour_ji          SMALLINT    REFERENCES ganji_metadata (code),

    analysis_result  JSONB,
    analysis_status  TEXT        NOT NULL DEFAULT 'pending',
    analysis_error   TEXT,
    analysis_version INTEGER,
    analyzed_at      TIMESTAMPTZ,

    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT saju_profiles_gender_check CHECK (gender IN ('M', 'F')),
    CONSTRAINT saju_profiles_leap_month_check CHECK (NOT (is_solar AND is_leap_month)),
    CONSTRAINT saju_profiles_pillar_codes_check CHECK (
        year_gan BETWEEN 0 AND 9 AND month_gan BETWEEN 0 AND 9
        AND day_gan BETWEEN 0 AND 9 AND hour_gan BETWEEN 0 AND 9
        AND year_ji BETWEEN 10 AND 21 AND month_ji BETWEEN 10 AND 21
        AND day_ji BETWEEN 10 AND 21 AND hour_ji BETWEEN 10 AND 21
    ),
    CONSTRAINT saju_profiles_analysis_status_check
        CHECK (analysis_status IN ('pending', 'done', 'error')),
    CONSTRAINT saju_profiles_analysis_done_check
        CHECK (analysis_status <> 'done' OR analysis_result IS NOT NULL),
    CONSTRAINT saju_profiles_analysis_result_object_check
        CHECK (analysis_result IS NULL OR jsonb_typeof(analysis_result) = 'object'),
    -- The score expression indexes below cast scores.<element> to numeric; a
    -- non-number there would otherwise fail inside the index with a cast error.
    CONSTRAINT saju_profiles_analysis_scores_check CHECK (
        coalesce(jsonb_typeof(analysis_result -> 'scores' -> 'wood'), 'number') = 'number'
        AND coalesce(jsonb_typeof(analysis_result -> 'scores' -> 'fire'), 'number') = 'number'
        AND coalesce(jsonb_typeof(analysis_result -> 'scores' -> 'earth'), 'number') = 'number'
        AND coalesce(jsonb_typeof(analysis_result -> 'scores' -> 'metal'), 'number') = 'number'
        AND coalesce(jsonb_typeof(analysis_result -> 'scores' -> 'water'), 'number') = 'number'
    )
);

COMMENT ON TABLE saju_profiles IS
    '사주 프로필: 출생 입력, 여덟 글자 코드, 분석 결과 캐시';
COMMENT ON COLUMN saju_profiles.gender IS
    'M 또는 F. 대운의 순행/역행 방향을 정하는 데 쓰임';
COMMENT ON COLUMN saju_profiles.birth_date IS
    '출생 시각(instant). 양력 입력이면 그대로의 출생 시각';
COMMENT ON COLUMN saju_profiles.is_solar IS
    'TRUE: birth_date가 양력. FALSE: birth_date의 날짜 부분은 음력 날짜(is_leap_month 참고)';
COMMENT ON COLUMN saju_profiles.is_leap_month IS
    '음력 입력(is_solar = FALSE)에서 윤달이면 TRUE. 이때 birth_date를 입력 시간대로 본 날짜 부분(연-월-일)은 음력 날짜이고 시각 부분은 그날의 출생 시각이다. 양력 입력에서는 항상 FALSE';
COMMENT ON COLUMN saju_profiles.year_gan IS '연주 천간 코드(0-9). 분석 전에는 NULL일 수 있음';
COMMENT ON COLUMN saju_profiles.year_ji IS '연주 지지 코드(10-21)';
COMMENT ON COLUMN saju_profiles.month_gan IS '월주 천간 코드(0-9)';
COMMENT ON COLUMN saju_profiles.month_ji IS '월주 지지 코드(10-21)';
COMMENT ON COLUMN saju_profiles.day_gan IS '일주 천간 코드(0-9), 일간';
COMMENT ON COLUMN saju_profiles.day_ji IS '일주 지지 코드(10-21)';
COMMENT ON COLUMN saju_profiles.hour_gan IS '시주 천간 코드(0-9)';
COMMENT ON COLUMN saju_profiles.hour_ji IS '시주 지지 코드(10-21)';
COMMENT ON COLUMN saju_profiles.analysis_result IS
    '분석 결과 JSON 객체(analysis_version의 문서 형식). 분석 전에는 NULL. scores.{wood,fire,earth,metal,water}는 숫자, groups는 해당하는 interaction_groups.id 배열';
COMMENT ON COLUMN saju_profiles.analysis_status IS
    'pending(분석 대기) | done(analysis_result 유효) | error(analysis_error에 사유)';
COMMENT ON COLUMN saju_profiles.analysis_error IS '마지막 분석 실패 사유. 성공하면 NULL';
COMMENT ON COLUMN saju_profiles.analysis_version IS
    'analysis_result를 만든 분석 엔진/문서 형식 버전';
COMMENT ON COLUMN saju_profiles.analyzed_at IS '마지막 분석 결과를 기록한 시각';

CREATE OR REPLACE TRIGGER saju_profiles_set_updated_at
    BEFORE UPDATE ON saju_profiles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE INDEX IF NOT EXISTS idx_saju_profiles_birth_date ON saju_profiles (birth_date);

-- Containment search over the whole result, e.g. "has 을경합":
--   WHERE analysis_result @> '{"groups":[102]}'
CREATE INDEX IF NOT EXISTS idx_saju_profiles_analysis_result
    ON saju_profiles USING GIN (analysis_result jsonb_path_ops);

COMMENT ON INDEX idx_saju_profiles_analysis_result IS
    'jsonb_path_ops GIN: serves analysis_result @> ''{"groups":[102]}'' (containment only; not ?, ?| or ?&)';

-- Range search on one element score, e.g. "wood score >= 30". The query must
-- repeat the indexed expression exactly:
--   WHERE (analysis_result->'scores'->>'wood')::numeric >= 30
CREATE INDEX IF NOT EXISTS idx_saju_profiles_score_wood
    ON saju_profiles (((analysis_result -> 'scores' ->> 'wood')::numeric));
CREATE INDEX IF NOT EXISTS idx_saju_profiles_score_fire
    ON saju_profiles (((analysis_result -> 'scores' ->> 'fire')::numeric));
CREATE INDEX IF NOT EXISTS idx_saju_profiles_score_earth
    ON saju_profiles (((analysis_result -> 'scores' ->> 'earth')::numeric));
CREATE INDEX IF NOT EXISTS idx_saju_profiles_score_metal
    ON saju_profiles (((analysis_result -> 'scores' ->> 'metal')::numeric));
CREATE INDEX IF NOT EXISTS idx_saju_profiles_score_water
    ON saju_profiles (((analysis_result -> 'scores' ->> 'water')::numeric));

COMMENT ON INDEX idx_saju_profiles_score_wood IS
    'Query form: WHERE (analysis_result->''scores''->>''wood'')::numeric >= 30';
COMMENT ON INDEX idx_saju_profiles_score_fire IS
    'Query form: WHERE (analysis_result->''scores''->>''fire'')::numeric >= 30';
COMMENT ON INDEX idx_saju_profiles_score_earth IS
    'Query form: WHERE (analysis_result->''scores''->>''earth'')::numeric >= 30';
COMMENT ON INDEX idx_saju_profiles_score_metal IS
    'Query form: WHERE (analysis_result->''scores''->>''metal'')::numeric >= 30';
COMMENT ON INDEX idx_saju_profiles_score_water IS
    'Query form: WHERE (analysis_result->''scores''->>''water'')::numeric >= 30';

-- Rows still waiting for (or retrying) analysis, walked in id (= time) order by
-- backfills and sweeps. Small, because done rows are excluded.
CREATE INDEX IF NOT EXISTS idx_saju_profiles_analysis_pending
    ON saju_profiles (id) WHERE analysis_status <> 'done';

COMMENT ON INDEX idx_saju_profiles_analysis_pending IS
    'Query form: WHERE analysis_status = ''pending'' ORDER BY id (also ''error'', or <> ''done'')';
