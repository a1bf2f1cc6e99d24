-- Progress of `analyzer reanalyze` jobs: the last primary key a job finished, so that a run
-- stopped for any reason resumes after it. One row per job name.

CREATE TABLE IF NOT EXISTS reanalyze_progress (
    job            TEXT        PRIMARY KEY,
    target_version INTEGER     NOT NULL,
    last_id        UUID,
    -- The end of the last chunk begun: rows up to it may have been written without their
    -- result events being acknowledged, so a resumed run takes them again whatever their
    -- analysis_version (and publishes the results they hold).
    high_id        UUID,
    rows_done      BIGINT      NOT NULL DEFAULT 0,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at    TIMESTAMPTZ
);

COMMENT ON TABLE reanalyze_progress IS
    'analyzer reanalyze 작업의 진행 상황: 마지막으로 끝낸 기본 키(last_id). 같은 이름으로 다시 실행하면 그 다음부터 이어서 처리';
