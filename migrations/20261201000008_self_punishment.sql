-- 자형(自刑): 진진, 오오, 유유, 해해. A chart has one when the same branch stands at two
-- pillars or more, so each group lists its one branch once; the analyzer counts it.
-- Analysis documents of version 2 report them in `groups` (704–707).

INSERT INTO interaction_groups (id, category, parent_id) VALUES
    (704, '지지형', 700), (705, '지지형', 700), (706, '지지형', 700), (707, '지지형', 700)
ON CONFLICT (id) DO NOTHING;

INSERT INTO ganji_interaction (code, group_id, description) VALUES
    (14, 704, '진진자형'), (16, 705, '오오자형'), (19, 706, '유유자형'), (21, 707, '해해자형')
ON CONFLICT (code, group_id) DO NOTHING;

INSERT INTO interaction_metadata (group_id, title, keywords, interpretation)
SELECT v.group_id, v.title, v.keywords, v.interpretation
FROM (VALUES
    (704, '진진자형(辰辰自刑): 고집의 형', ARRAY['고집', '자책', '정체'],
     '같은 진토가 겹쳐 스스로를 옭아매는 형이라, 한 가지 생각에 오래 매달리다 기회를 놓치기 쉬우니 방향을 바꿀 여유를 두는 편이 좋습니다.'),
    (705, '오오자형(午午自刑): 조급의 형', ARRAY['조급', '과열', '충동'],
     '불 기운이 겹쳐 스스로 달아오르는 형이라, 서두르다 일을 그르치거나 감정이 앞서기 쉬우니 한 번 식혀 두고 결정하는 것이 낫습니다.'),
    (706, '유유자형(酉酉自刑): 예민의 형', ARRAY['예민', '완벽', '자기비판'],
     '날 선 금 기운이 겹친 형이라, 스스로에게 지나치게 엄격해 작은 흠에도 상처받기 쉬우니 기준을 조금 느슨하게 잡는 편이 좋습니다.'),
    (707, '해해자형(亥亥自刑): 근심의 형', ARRAY['걱정', '고립', '혼란'],
     '깊은 물 기운이 겹쳐 생각이 꼬리를 무는 형이라, 혼자 고민을 키우기 쉬우니 가까운 사람과 나누며 풀어 가는 것이 좋습니다.')
) AS v (group_id, title, keywords, interpretation)
WHERE NOT EXISTS (SELECT 1 FROM interaction_metadata m WHERE m.group_id = v.group_id)
ON CONFLICT (group_id) DO NOTHING;
