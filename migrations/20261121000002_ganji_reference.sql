-- Saju reference data: the 22 stems and branches, the interaction groups and
-- which codes take part in each interaction.
--
-- Codes: 0-9 are the heavenly stems (천간 갑을병정무기경신임계), 10-21 the
-- earthly branches (지지 자축인묘진사오미신유술해). Interaction group ids use
-- the hundreds digit for the category (100 천간합 ... 900 지지해); the detail
-- groups (101, 102, ...) point at their category through parent_id.
--
-- Reference rows are inserted with ON CONFLICT DO NOTHING, so re-running the
-- file leaves existing rows as they are.

CREATE TABLE IF NOT EXISTS ganji_metadata (
    code      SMALLINT      PRIMARY KEY,
    name_ko   CHAR(1)       NOT NULL,
    name_hani CHAR(1)       NOT NULL,
    type      TEXT          NOT NULL,
    element   element_type  NOT NULL,
    yin_yang  yin_yang_type NOT NULL,
    CONSTRAINT ganji_metadata_type_check CHECK (type IN ('천간', '지지')),
    CONSTRAINT ganji_metadata_code_range_check CHECK (
        (type = '천간' AND code BETWEEN 0 AND 9)
        OR (type = '지지' AND code BETWEEN 10 AND 21)
    )
);

COMMENT ON TABLE ganji_metadata IS
    '천간(0-9)과 지지(10-21) 22자의 이름, 오행, 음양. 읽기 전용 기준 데이터';
COMMENT ON COLUMN ganji_metadata.code IS '0-9 천간 갑..계, 10-21 지지 자..해';
COMMENT ON COLUMN ganji_metadata.type IS '천간 또는 지지';

INSERT INTO ganji_metadata (code, name_ko, name_hani, type, element, yin_yang) VALUES
    (0, '갑', '甲', '천간', '목', '양'),
    (1, '을', '乙', '천간', '목', '음'),
    (2, '병', '丙', '천간', '화', '양'),
    (3, '정', '丁', '천간', '화', '음'),
    (4, '무', '戊', '천간', '토', '양'),
    (5, '기', '己', '천간', '토', '음'),
    (6, '경', '庚', '천간', '금', '양'),
    (7, '신', '辛', '천간', '금', '음'),
    (8, '임', '壬', '천간', '수', '양'),
    (9, '계', '癸', '천간', '수', '음'),
    (10, '자', '子', '지지', '수', '양'),
    (11, '축', '丑', '지지', '토', '음'),
    (12, '인', '寅', '지지', '목', '양'),
    (13, '묘', '卯', '지지', '목', '음'),
    (14, '진', '辰', '지지', '토', '양'),
    (15, '사', '巳', '지지', '화', '음'),
    (16, '오', '午', '지지', '화', '양'),
    (17, '미', '未', '지지', '토', '음'),
    (18, '신', '申', '지지', '금', '양'),
    (19, '유', '酉', '지지', '금', '음'),
    (20, '술', '戌', '지지', '토', '양'),
    (21, '해', '亥', '지지', '수', '음')
ON CONFLICT (code) DO NOTHING;

CREATE TABLE IF NOT EXISTS interaction_groups (
    id        INTEGER     PRIMARY KEY,
    category  VARCHAR(20) NOT NULL,
    parent_id INTEGER     REFERENCES interaction_groups (id),
    CONSTRAINT interaction_groups_parent_check CHECK (
        (id % 100 = 0 AND parent_id IS NULL)
        OR (id % 100 <> 0 AND parent_id = id / 100 * 100)
    )
);

COMMENT ON TABLE interaction_groups IS
    '상호작용 분류. 100 단위 id는 범주(천간합, 천간충, 지지육합, 지지삼합, 지지방합, 지지육충, 지지형, 지지파, 지지해), 그 밖의 id는 개별 관계';
COMMENT ON COLUMN interaction_groups.parent_id IS
    '개별 관계(예: 102)가 속한 범주 행(예: 100). 범주 행은 NULL';

INSERT INTO interaction_groups (id, category, parent_id) VALUES
    (100, '천간합', NULL), (200, '천간충', NULL),
    (300, '지지육합', NULL), (400, '지지삼합', NULL), (500, '지지방합', NULL),
    (600, '지지육충', NULL), (700, '지지형', NULL), (800, '지지파', NULL), (900, '지지해', NULL)
ON CONFLICT (id) DO NOTHING;

INSERT INTO interaction_groups (id, category, parent_id) VALUES
    (101, '천간합', 100), (102, '천간합', 100), (103, '천간합', 100), (104, '천간합', 100), (105, '천간합', 100),
    (201, '천간충', 200), (202, '천간충', 200), (203, '천간충', 200), (204, '천간충', 200),
    (301, '지지육합', 300), (302, '지지육합', 300), (303, '지지육합', 300),
    (304, '지지육합', 300), (305, '지지육합', 300), (306, '지지육합', 300),
    (401, '지지삼합', 400), (402, '지지삼합', 400), (403, '지지삼합', 400), (404, '지지삼합', 400),
    (501, '지지방합', 500), (502, '지지방합', 500), (503, '지지방합', 500), (504, '지지방합', 500),
    (601, '지지육충', 600), (602, '지지육충', 600), (603, '지지육충', 600),
    (604, '지지육충', 600), (605, '지지육충', 600), (606, '지지육충', 600),
    (701, '지지형', 700), (702, '지지형', 700), (703, '지지형', 700),
    (801, '지지파', 800), (802, '지지파', 800), (803, '지지파', 800),
    (804, '지지파', 800), (805, '지지파', 800), (806, '지지파', 800),
    (901, '지지해', 900), (902, '지지해', 900), (903, '지지해', 900),
    (904, '지지해', 900), (905, '지지해', 900), (906, '지지해', 900)
ON CONFLICT (id) DO NOTHING;

-- Which codes take part in each detail group: a chart has the interaction when
-- it holds every code listed for the group (two for 합/충/파/해 and 자묘형,
-- three for 삼합, 방합 and 삼형). Counting duplicates (쟁합 and the like) is the
-- analyzer's job, not the table's.
--
-- id is derived from the row (group_id * 100 + code, e.g. 10105 for 기 in
-- group 101), so it is the same in every database and re-running the insert
-- below consumes nothing.
CREATE TABLE IF NOT EXISTS ganji_interaction (
    id          INTEGER  GENERATED ALWAYS AS (group_id * 100 + code) STORED PRIMARY KEY,
    code        SMALLINT NOT NULL REFERENCES ganji_metadata (code) ON DELETE CASCADE,
    group_id    INTEGER  NOT NULL REFERENCES interaction_groups (id) ON DELETE CASCADE,
    description TEXT     NOT NULL,
    CONSTRAINT ganji_interaction_code_group_key UNIQUE (code, group_id)
);

CREATE INDEX IF NOT EXISTS idx_ganji_interaction_group_id ON ganji_interaction (group_id);

COMMENT ON TABLE ganji_interaction IS
    '간지 코드별 참여 관계. (code, group_id) 하나가 "이 글자는 이 관계의 한 구성원"을 뜻함';
COMMENT ON COLUMN ganji_interaction.id IS 'group_id * 100 + code (파생 값, 직접 쓰지 않음)';

-- One tuple per (code, group): keep the `(code, group_id, 'description')` shape.
INSERT INTO ganji_interaction (code, group_id, description) VALUES
    (0, 101, '갑기합토'), (5, 101, '갑기합토'),
    (1, 102, '을경합금'), (6, 102, '을경합금'),
    (2, 103, '병신합수'), (7, 103, '병신합수'),
    (3, 104, '정임합목'), (8, 104, '정임합목'),
    (4, 105, '무계합화'), (9, 105, '무계합화'),
    (0, 201, '갑경충'), (6, 201, '갑경충'),
    (1, 202, '을신충'), (7, 202, '을신충'),
    (2, 203, '병임충'), (8, 203, '병임충'),
    (3, 204, '정계충'), (9, 204, '정계충'),
    (10, 301, '자축합토'), (11, 301, '자축합토'),
    (12, 302, '인해합목'), (21, 302, '인해합목'),
    (13, 303, '묘술합화'), (20, 303, '묘술합화'),
    (14, 304, '진유합금'), (19, 304, '진유합금'),
    (15, 305, '사신합수'), (18, 305, '사신합수'),
    (16, 306, '오미합화'), (17, 306, '오미합화'),
    (21, 401, '해묘미'), (13, 401, '해묘미'), (17, 401, '해묘미'),
    (12, 402, '인오술'), (16, 402, '인오술'), (20, 402, '인오술'),
    (15, 403, '사유축'), (19, 403, '사유축'), (11, 403, '사유축'),
    (18, 404, '신자진'), (10, 404, '신자진'), (14, 404, '신자진'),
    (12, 501, '인묘진'), (13, 501, '인묘진'), (14, 501, '인묘진'),
    (15, 502, '사오미'), (16, 502, '사오미'), (17, 502, '사오미'),
    (18, 503, '신유술'), (19, 503, '신유술'), (20, 503, '신유술'),
    (21, 504, '해자축'), (10, 504, '해자축'), (11, 504, '해자축'),
    (10, 601, '자오충'), (16, 601, '자오충'),
    (11, 602, '축미충'), (17, 602, '축미충'),
    (12, 603, '인신충'), (18, 603, '인신충'),
    (13, 604, '묘유충'), (19, 604, '묘유충'),
    (14, 605, '진술충'), (20, 605, '진술충'),
    (15, 606, '사해충'), (21, 606, '사해충'),
    (12, 701, '인사신 삼형'), (15, 701, '인사신 삼형'), (18, 701, '인사신 삼형'),
    (11, 702, '축술미 삼형'), (20, 702, '축술미 삼형'), (17, 702, '축술미 삼형'),
    (10, 703, '자묘형'), (13, 703, '자묘형'),
    (10, 801, '자유파'), (19, 801, '자유파'),
    (11, 802, '축진파'), (14, 802, '축진파'),
    (12, 803, '인해파'), (21, 803, '인해파'),
    (13, 804, '묘오파'), (16, 804, '묘오파'),
    (15, 805, '사신파'), (18, 805, '사신파'),
    (20, 806, '술미파'), (17, 806, '술미파'),
    (10, 901, '자미해'), (17, 901, '자미해'),
    (11, 902, '축오해'), (16, 902, '축오해'),
    (12, 903, '인사해'), (15, 903, '인사해'),
    (13, 904, '묘진해'), (14, 904, '묘진해'),
    (18, 905, '신해해'), (21, 905, '신해해'),
    (19, 906, '유술해'), (20, 906, '유술해')
ON CONFLICT (code, group_id) DO NOTHING;
