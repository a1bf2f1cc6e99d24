-- A narrower search index for the analysis document.
--
-- The GIN index on the whole analysis_result took every one of a document's ~240 leaves
-- (hidden stems, luck pillars, ten gods, interaction details…) as an index key, and merging
-- those keys cost most of each write-back. The queries people run search a few members:
-- interaction groups, 12운성, 신살, 공망, 신강/신약 and 납음. analysis_facets() picks those
-- members (~80 keys per row), and the GIN index is on it instead:
--
--   WHERE analysis_facets(analysis_result) @> '{"groups": [102]}'
--   WHERE analysis_facets(analysis_result) @> '{"twelve_stages": {"day": {"name": "건록"}}}'
--
-- Each facet has the same shape as in analysis_result, so a containment pattern written for
-- the document works unchanged inside analysis_facets(...). Other members are read from
-- analysis_result as before (and the five element scores keep their expression indexes).

CREATE OR REPLACE FUNCTION analysis_facets(result jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'groups', result -> 'groups',
        'twelve_stages', result -> 'twelve_stages',
        'twelve_stages_self', result -> 'twelve_stages_self',
        'gongmang', result -> 'gongmang',
        'napeum', result -> 'napeum',
        'sinsal', result -> 'sinsal',
        'strength', result -> 'strength',
        'day_master', result -> 'day_master'
    ));

COMMENT ON FUNCTION analysis_facets(jsonb) IS
    '검색용 분석 항목(groups, 12운성, 공망, 납음, 신살, 신강/신약, 일간)만 모은 JSON. idx_saju_profiles_analysis_facets가 이 값을 색인한다: WHERE analysis_facets(analysis_result) @> ''{"groups":[102]}''';

CREATE INDEX IF NOT EXISTS idx_saju_profiles_analysis_facets
    ON saju_profiles USING GIN (analysis_facets(analysis_result) jsonb_path_ops);

COMMENT ON INDEX idx_saju_profiles_analysis_facets IS
    '검색용 분석 항목의 포함 검색(@>): WHERE analysis_facets(analysis_result) @> ''{"twelve_stages":{"day":{"name":"건록"}}}''';

DROP INDEX IF EXISTS idx_saju_profiles_analysis_result;
