-- Lunar birthdays in a form that can hold every one of them.
--
-- Until now a lunar birth was the date part of birth_date (read in the analyzer's zone)
-- with is_solar = FALSE: a TIMESTAMPTZ cannot hold lunar 2/30 (nor 2/29 outside leap
-- years), which are real lunar dates in many years. lunar_birth holds the lunar date and the
-- clock time of birth as text, 'YYYY-MM-DD HH:MM' (with is_leap_month for the leap month),
-- and a lunar profile may leave birth_date NULL. The original form keeps working: a lunar
-- row without lunar_birth is read as before.
--
-- Existing lunar rows get their lunar_birth from birth_date read in Asia/Seoul (the
-- analyzer's default zone, SAJU_ZONE). A deployment that ran the analyzer in another zone
-- recomputes it with that zone:
--   UPDATE saju_profiles SET lunar_birth = to_char(birth_date AT TIME ZONE '<zone>', 'YYYY-MM-DD HH24:MI')
--   WHERE NOT is_solar AND birth_date IS NOT NULL;

ALTER TABLE saju_profiles ADD COLUMN IF NOT EXISTS lunar_birth TEXT;
ALTER TABLE saju_profiles ALTER COLUMN birth_date DROP NOT NULL;

ALTER TABLE saju_profiles DROP CONSTRAINT IF EXISTS saju_profiles_lunar_birth_check;
ALTER TABLE saju_profiles ADD CONSTRAINT saju_profiles_lunar_birth_check CHECK (
    lunar_birth IS NULL
    OR (NOT is_solar
        AND lunar_birth ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|30) ([01][0-9]|2[0-3]):[0-5][0-9]$')
);
ALTER TABLE saju_profiles DROP CONSTRAINT IF EXISTS saju_profiles_birth_given_check;
ALTER TABLE saju_profiles ADD CONSTRAINT saju_profiles_birth_given_check
    CHECK (birth_date IS NOT NULL OR lunar_birth IS NOT NULL);

UPDATE saju_profiles
SET lunar_birth = to_char(birth_date AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD HH24:MI')
WHERE NOT is_solar AND lunar_birth IS NULL AND birth_date IS NOT NULL
  -- A date part no lunar date can have (day 31, a year outside four digits) stays in the
  -- original form, where the analyzer records why it cannot be charted.
  AND extract(year FROM birth_date AT TIME ZONE 'Asia/Seoul') BETWEEN 1000 AND 9999
  AND extract(day FROM birth_date AT TIME ZONE 'Asia/Seoul') <= 30;

COMMENT ON COLUMN saju_profiles.lunar_birth IS
    '음력 출생일과 출생 시각, ''YYYY-MM-DD HH:MM'' (윤달이면 is_leap_month = TRUE). is_solar = FALSE일 때만. 2월 30일처럼 birth_date로는 담을 수 없는 음력 날짜도 담는다. 있으면 birth_date보다 우선하고, 이때 birth_date는 NULL이어도 된다';
COMMENT ON COLUMN saju_profiles.birth_date IS
    '출생 시각(instant). 양력 입력이면 그대로의 출생 시각. 음력 입력은 lunar_birth에 두는 것이 좋고, lunar_birth가 없으면 이 값을 입력 시간대로 본 날짜 부분이 음력 날짜, 시각 부분이 출생 시각이다';
COMMENT ON COLUMN saju_profiles.is_solar IS
    'TRUE: birth_date가 양력. FALSE: 음력 입력 — lunar_birth, 없으면 birth_date의 날짜 부분(is_leap_month 참고)';
COMMENT ON COLUMN saju_profiles.analysis_input IS
    '분석 결과(또는 오류)를 계산한 입력의 지문: birth_date, is_solar, is_leap_month, lunar_birth, gender, 적용한 규칙. 현재 입력의 지문과 같으면 다시 분석하지 않음';
