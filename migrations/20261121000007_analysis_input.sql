-- The analyzer records which inputs a result (or an error) was computed from, as a short
-- fingerprint of birth_date, is_solar, is_leap_month, gender and the conventions in force.
--
-- A change event whose row carries a fingerprint equal to that of its own inputs needs no
-- work: it is the analyzer's own write-back, or an edit of something that is not an input
-- (the name). Any edit of an input makes the two differ, so it is analyzed again. The
-- write-back itself only lands while the row still has the inputs it was computed from.

ALTER TABLE saju_profiles ADD COLUMN IF NOT EXISTS analysis_input TEXT;

COMMENT ON COLUMN saju_profiles.analysis_input IS
    '분석 결과(또는 오류)를 계산한 입력의 지문: birth_date, is_solar, is_leap_month, gender, 적용한 규칙. 현재 입력의 지문과 같으면 다시 분석하지 않음';
