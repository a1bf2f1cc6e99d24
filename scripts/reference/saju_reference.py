#!/usr/bin/env python3
"""Independent reference answers for the saju crate's tests (dev-only).

Run with the venv that scripts/reference/setup prepares:

    .cache/refvenv/bin/python scripts/reference/saju_reference.py <command>

Commands (all line-oriented, stdin to stdout):

  pillars      "YYYY-MM-DD HH:MM:SS" civil time at UTC+9 per line -> the eight codes
               (year stem, year branch, ..., hour branch) from bazi-chart's
               cast_pillars(dt, tz_hours=9, day_rollover='midnight').
  luck         "YYYY-MM-DD HH:MM:SS M|F" per line -> "<forward 1|0> <start years>
               <first luck pillar's cycle position>" from bazi-chart's dayun_list.
  lunar-days   no input; for every solar day 1900-01-01..2050-12-31 prints
               "YYYY-MM-DD year month day leap" from korean-lunar-calendar.
  lunar-valid  "year month day leap" per line -> "1" if korean-lunar-calendar
               accepts that lunar date, else "0".
  zone         Unix seconds per line -> UTC offset in seconds of Asia/Seoul (zoneinfo).
  extras       "ys yb ms mb ds db hs hb" (the eight codes) per line, optionally followed by
               "YYYY-MM-DD HH:MM:SS" (UTC+9 civil birth) -> one JSON object per line with,
               for each derived item (12운성, 공망, 납음, 12신살, 신살, 자형, 원진, 귀문, 태원,
               명궁, 신궁, 태식, 신강/신약), the answer of each library that computes it, keyed
               by library (korean_saju, lunar_python, bazi_chart). Every library is fed the
               given pillars, never a datetime; the optional birth only adds "from_birth" with
               lunar-python's own pillars for that clock time (its 절기 are at UTC+8).
               Names are Korean hangul (Chinese names through the fixed tables below).
               Conventions and tables of each library: the saju-refs.md notes.
"""

import datetime
import sys

STEMS = "甲乙丙丁戊己庚辛壬癸"
BRANCHES = "子丑寅卯辰巳午未申酉戌亥"


def pillars() -> None:
    from bazi import cast_pillars

    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        dt = datetime.datetime.strptime(line, "%Y-%m-%d %H:%M:%S")
        fp = cast_pillars(dt, tz_hours=9, day_rollover="midnight")
        codes = []
        for p in (fp.year, fp.month, fp.day, fp.hour):
            codes.append(STEMS.index(p.gan))
            codes.append(10 + BRANCHES.index(p.zhi))
        out.write(" ".join(map(str, codes)) + "\n")


def luck() -> None:
    from bazi import cast_pillars
    from bazi.fortune import dayun_list, start_age

    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        stamp, gender = line.rsplit(" ", 1)
        dt = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        fp = cast_pillars(dt, "男" if gender == "M" else "女", tz_hours=9, day_rollover="midnight")
        years, _, _ = start_age(fp)
        first = dayun_list(fp, steps=1)[0]
        forward = (fp.is_yang_year and gender == "M") or (not fp.is_yang_year and gender == "F")
        position = next(i for i in range(60) if i % 10 == STEMS.index(first.gan)
                        and i % 12 == BRANCHES.index(first.zhi))
        sys.stdout.write(f"{1 if forward else 0} {years:.6f} {position}\n")


def lunar_days() -> None:
    from korean_lunar_calendar import KoreanLunarCalendar

    cal = KoreanLunarCalendar()
    day = datetime.date(1900, 1, 1)
    end = datetime.date(2050, 12, 31)
    one = datetime.timedelta(days=1)
    out = sys.stdout
    while day <= end:
        if not cal.setSolarDate(day.year, day.month, day.day):
            raise SystemExit(f"reference rejects solar {day}")
        leap = 1 if cal.isIntercalation else 0
        out.write(f"{day.isoformat()} {cal.lunarYear} {cal.lunarMonth} {cal.lunarDay} {leap}\n")
        day += one


def lunar_valid() -> None:
    from korean_lunar_calendar import KoreanLunarCalendar

    cal = KoreanLunarCalendar()
    for line in sys.stdin:
        if not line.strip():
            continue
        y, m, d, leap = map(int, line.split())
        sys.stdout.write("1\n" if cal.setLunarDate(y, m, d, leap == 1) else "0\n")


def zone() -> None:
    from zoneinfo import ZoneInfo

    seoul = ZoneInfo("Asia/Seoul")
    for line in sys.stdin:
        if not line.strip():
            continue
        t = datetime.datetime.fromtimestamp(int(line), seoul)
        sys.stdout.write(f"{int(t.utcoffset().total_seconds())}\n")


# ---------------------------------------------------------------------------------------------
# extras
# ---------------------------------------------------------------------------------------------

POSITIONS = ("year", "month", "day", "hour")

# Chinese names of the libraries -> Korean.
STAGES_KO = {"长生": "장생", "沐浴": "목욕", "冠带": "관대", "临官": "임관", "帝旺": "제왕", "衰": "쇠",
             "病": "병", "死": "사", "墓": "묘", "绝": "절", "胎": "태", "养": "양"}
ELEMENT_KO = {"木": "목", "火": "화", "土": "토", "金": "금", "水": "수"}
# 납음 in 60갑자 pair order (甲子乙丑, 丙寅丁卯, ...): simplified (as both Chinese libraries
# spell them), Korean hangul, Korean hanja.
NAPEUM = (
    ("海中金", "해중금", "海中金"), ("炉中火", "노중화", "爐中火"), ("大林木", "대림목", "大林木"),
    ("路旁土", "노방토", "路傍土"), ("剑锋金", "검봉금", "劍鋒金"), ("山头火", "산두화", "山頭火"),
    ("涧下水", "간하수", "澗下水"), ("城头土", "성두토", "城頭土"), ("白蜡金", "백랍금", "白蠟金"),
    ("杨柳木", "양류목", "楊柳木"), ("泉中水", "천중수", "泉中水"), ("屋上土", "옥상토", "屋上土"),
    ("霹雳火", "벽력화", "霹靂火"), ("松柏木", "송백목", "松柏木"), ("长流水", "장류수", "長流水"),
    ("沙中金", "사중금", "沙中金"), ("山下火", "산하화", "山下火"), ("平地木", "평지목", "平地木"),
    ("壁上土", "벽상토", "壁上土"), ("金箔金", "금박금", "金箔金"), ("覆灯火", "복등화", "覆燈火"),
    ("天河水", "천하수", "天河水"), ("大驿土", "대역토", "大驛土"), ("钗钏金", "차천금", "釵釧金"),
    ("桑柘木", "상자목", "桑柘木"), ("大溪水", "대계수", "大溪水"), ("沙中土", "사중토", "沙中土"),
    ("天上火", "천상화", "天上火"), ("石榴木", "석류목", "石榴木"), ("大海水", "대해수", "大海水"),
)
NAPEUM_BY_ZH = {zh: (ko, hanja) for zh, ko, hanja in NAPEUM}
# bazi-chart's 神煞 names -> Korean (korean-saju's spelling where it has the same 신살).
SHENSHA_KO = {
    "天乙贵人": "천을귀인", "太极贵人": "태극귀인", "福星贵人": "복성귀인", "国印贵人": "국인귀인",
    "文昌贵人": "문창귀인", "金舆": "금여", "禄神": "녹신", "羊刃": "양인살", "红艳煞": "홍염살",
    "天德贵人": "천덕귀인", "月德贵人": "월덕귀인", "将星": "장성살", "华盖": "화개살",
    "驿马": "역마살", "桃花": "도화살", "劫煞": "겁살", "灾煞": "재살", "亡神": "망신살",
    "孤辰": "고신살", "寡宿": "과숙살", "天罗": "천라", "地网": "지망", "十恶大败": "십악대패",
    "阴差阳错": "음착양차", "魁罡": "괴강살", "六秀日": "육수일", "日德": "일덕", "金神": "금신",
    "天赦": "천사", "天医": "천의성", "童子煞": "동자살", "天上三奇": "천상삼기",
    "地下三奇": "지하삼기", "人中三奇": "인중삼기",
}
# bazi-chart's 12신살 subset (三合系 tables) -> Korean 12신살 names.
BAZI_SINSAL12 = (("JIESHA", "겁살"), ("ZAISHA", "재살"), ("TAOHUA", "연살"), ("WANGSHEN", "망신살"),
                 ("JIANGXING", "장성살"), ("YIMA", "역마살"), ("HUAGAI", "화개살"))
BAZI_POS = {"年": "year", "月": "month", "日": "day", "时": "hour"}
BAZI_PART = {"干": "stem", "支": "branch", "柱": "pillar"}
BAZI_BASIS = {"日干查": "day_stem", "年干查": "year_stem", "年支查": "year_branch", "日支查": "day_branch"}
KS_LOC = {"연간": "year_stem", "연지": "year_branch", "월간": "month_stem", "월지": "month_branch",
          "일간": "day_stem", "일지": "day_branch", "시간": "hour_stem", "시지": "hour_branch"}


AT_ORDER = [f"{p}_{part}" for p in POSITIONS for part in ("stem", "branch", "pillar")]


def in_order(at: list[str]) -> list[str]:
    """Positions in a fixed order (some libraries iterate sets), duplicates dropped."""
    return sorted(set(at), key=lambda a: AT_ORDER.index(a) if a in AT_ORDER else len(AT_ORDER))


def branch_code(zhi: str) -> int:
    return 10 + BRANCHES.index(zhi)


def pillar_codes(ganzhi: str) -> list[int]:
    return [STEMS.index(ganzhi[0]), branch_code(ganzhi[1])]


def napeum_entry(zh: str) -> dict:
    ko, hanja = NAPEUM_BY_ZH[zh]
    return {"name": ko, "hanja": hanja, "element": ELEMENT_KO[zh[-1]]}


class _PillarLunar:
    """Stands in for lunar-python's Lunar under EightChar: answers the pillar accessors EightChar
    reads from the given pillars (index 0 = 甲 / 子), so EightChar's own DiShi, NaYin, TaiYuan,
    TaiXi, MingGong, ShenGong and XunKong code runs on exactly these pillars."""

    def __init__(self, gz: list[str]):
        self.gz = gz  # four "干支" strings, year..hour

    def _g(self, i):
        return self.gz[i][0]

    def _z(self, i):
        return self.gz[i][1]

    def getYearInGanZhiExact(self): return self.gz[0]
    def getYearGanExact(self): return self._g(0)
    def getYearZhiExact(self): return self._z(0)
    def getYearGanIndexExact(self): return STEMS.index(self._g(0))
    def getYearZhiIndexExact(self): return BRANCHES.index(self._z(0))
    def getMonthInGanZhiExact(self): return self.gz[1]
    def getMonthGanExact(self): return self._g(1)
    def getMonthZhiExact(self): return self._z(1)
    def getMonthGanIndexExact(self): return STEMS.index(self._g(1))
    def getMonthZhiIndexExact(self): return BRANCHES.index(self._z(1))
    def getDayInGanZhiExact2(self): return self.gz[2]
    def getDayGanExact2(self): return self._g(2)
    def getDayZhiExact2(self): return self._z(2)
    def getDayGanIndexExact2(self): return STEMS.index(self._g(2))
    def getDayZhiIndexExact2(self): return BRANCHES.index(self._z(2))
    def getTimeInGanZhi(self): return self.gz[3]
    def getTimeGan(self): return self._g(3)
    def getTimeZhi(self): return self._z(3)
    def getTimeZhiIndex(self): return BRANCHES.index(self._z(3))

    def _kong(self, i):
        from lunar_python.util import LunarUtil
        return LunarUtil.getXunKong(self.gz[i])

    def getYearXunKongExact(self): return self._kong(0)
    def getMonthXunKongExact(self): return self._kong(1)
    def getDayXunKongExact2(self): return self._kong(2)
    def getTimeXunKong(self): return self._kong(3)


def _lunar_python(gz: list[str]) -> dict:
    from lunar_python import EightChar

    ec = EightChar(_PillarLunar(gz))  # sect 2: the day pillar is the given one
    getters = {"year": "Year", "month": "Month", "day": "Day", "hour": "Time"}
    stages = {p: STAGES_KO[getattr(ec, f"get{g}DiShi")()] for p, g in getters.items()}
    # Each pillar's own stem on its own branch: the same DiShi code with that pillar as the day.
    stages_self = {p: STAGES_KO[EightChar(_PillarLunar([gz[i]] * 4)).getDayDiShi()]
                   for i, p in enumerate(POSITIONS)}
    return {
        "twelve_stages": stages,
        "twelve_stages_self": stages_self,
        "gongmang": {"day": [branch_code(z) for z in ec.getDayXunKong()],
                     "year": [branch_code(z) for z in ec.getYearXunKong()]},
        "napeum": {p: napeum_entry(getattr(ec, f"get{g}NaYin")()) for p, g in getters.items()},
        "tae_won": pillar_codes(ec.getTaiYuan()),
        "tae_sik": pillar_codes(ec.getTaiXi()),
        "myeong_gung": pillar_codes(ec.getMingGong()),
        "sin_gung": pillar_codes(ec.getShenGong()),
    }


def _korean_saju(codes: list[int]) -> dict:
    from korean_saju import (CheonGan, GanJi, HapChungAnalyzer, IlganStrengthAnalyzer, JiJi, Saju,
                             SajuAnalysis, SibiunseongCalculator)
    from korean_saju.saju.hapchung import ChungHyungKind

    pillars = [GanJi(CheonGan.by_index(codes[2 * i]), JiJi.by_index(codes[2 * i + 1] - 10))
               for i in range(4)]
    saju = Saju(year_pillar=pillars[0], month_pillar=pillars[1], day_pillar=pillars[2],
                hour_pillar=pillars[3], kst_moment=datetime.datetime(2000, 1, 1), longitude=135.0)
    an = SajuAnalysis(saju)
    by_pos = lambda d: {pos.name.lower(): v.hangul for pos, v in d.items()}  # noqa: E731
    gong = an.gongmang_by_pillar
    sinsal = [{"name": d.sinsal.hangul, "at": in_order([KS_LOC[l.label] for l in d.locations])}
              for d in an.sinsal]
    self_pun = sorted({10 + JiJi.from_hanja(c.members[0]).index
                       for c in HapChungAnalyzer.detect_chung_hyung(saju)
                       if c.kind is ChungHyungKind.HYUNG and len(c.members) == 2
                       and c.members[0] == c.members[1]})
    st = IlganStrengthAnalyzer.analyze(saju)
    return {
        "twelve_stages": by_pos(an.sibiunseong),
        "twelve_stages_self": {p: SibiunseongCalculator.for_ji_ji(g.cheon_gan, g.ji_ji).hangul
                               for p, g in zip(POSITIONS, pillars)},
        "gongmang": {k: [10 + b.index for b in gong[pos].gongmang_branches]
                     for k, pos in (("day", next(p for p in gong if p.name == "DAY")),
                                    ("year", next(p for p in gong if p.name == "YEAR")))},
        "sinsal12_year": by_pos(an.sibisinsal_by_year),
        "sinsal12_day": by_pos(an.sibisinsal),
        "sinsal": sinsal,
        "self_punishment": self_pun,
        "wonjin": next((e["at"] for e in sinsal if e["name"] == "원진살"), []),
        "gwimun": next((e["at"] for e in sinsal if e["name"] == "귀문관살"), []),
        "strength": {"verdict": st.level.hangul, "score": round(st.total, 3)},
    }


def _bazi_chart(codes: list[int]) -> dict:
    from bazi import shensha as bs
    from bazi.constants import changsheng, nayin, relations, xunkong
    from bazi.pillars import FourPillars, Pillar, day_master_strength

    ps = [Pillar(STEMS[codes[2 * i]], BRANCHES[codes[2 * i + 1] - 10]) for i in range(4)]
    # Only the pillars are read by the functions used below; the rest is placeholder.
    fp = FourPillars(ps[0], ps[1], ps[2], ps[3], datetime.datetime(2000, 1, 1),
                     datetime.datetime(2000, 1, 1), 2000, None)
    day_gan = ps[2].gan

    def sinsal12(basis_zhi: str) -> dict:
        key = bs._sanhe_key(basis_zhi)
        out = {}
        for pos, p in zip(POSITIONS, ps):
            out[pos] = next((ko for table, ko in BAZI_SINSAL12 if getattr(bs, table)[key] == p.zhi),
                            None)
        return out

    # find_shensha, grouped by (name, basis) with the positions it reports.
    grouped: dict[tuple[str, str | None], list[str]] = {}  # insertion order = the library's
    for item in bs.find_shensha(fp).items:
        name = SHENSHA_KO[item.name]
        basis = next((b for k, b in BAZI_BASIS.items() if item.note.startswith(k)), None)
        pos = item.position
        if pos in ("四支", "四干"):
            kind = "branch" if pos == "四支" else "stem"
            vals = item.value
            at = [f"{p}_{kind}" for p, pl in zip(POSITIONS, ps)
                  if (pl.zhi if kind == "branch" else pl.gan) in vals]
            if kind == "stem":  # 三奇: the three consecutive stems that form it
                seq = "".join(pl.gan for pl in ps)
                i = seq.find(vals)
                at = [f"{POSITIONS[j]}_stem" for j in range(i, i + 3)]
        elif pos == "日时支":
            at = ["day_or_hour_branch"]
        else:
            at = [BAZI_POS[pos[0]] + "_" + BAZI_PART[pos[1]]]
        grouped.setdefault((name, basis), []).extend(at)
    sinsal = []
    for (name, basis), at in grouped.items():
        entry = {"name": name, "at": in_order(at)}
        if basis:
            entry["basis"] = basis
        sinsal.append(entry)

    self_pun = sorted({branch_code(a.zhi) for i, a in enumerate(ps) for b in ps[i + 1:]
                       if "自刑" in relations(a.zhi, b.zhi)})
    st = day_master_strength(fp)
    score = st["score"]

    # The schools of 12운성 no library offers as an option, built from bazi-chart's own rows:
    # 수토동궁 counts 戊/己 on 壬/癸's rows (direction unchanged), 음양동생 counts a yin stem
    # on its yang sibling's row (forward).
    def suto(gan: str, zhi: str) -> str:
        return STAGES_KO[changsheng({"戊": "壬", "己": "癸"}.get(gan, gan), zhi)]

    def dongsaeng(gan: str, zhi: str) -> str:
        return STAGES_KO[changsheng(STEMS[STEMS.index(gan) & ~1], zhi)]

    schools = {
        name: {"twelve_stages": {pos: f(day_gan, p.zhi) for pos, p in zip(POSITIONS, ps)},
               "twelve_stages_self": {pos: f(p.gan, p.zhi) for pos, p in zip(POSITIONS, ps)}}
        for name, f in (("suto", suto), ("dongsaeng", dongsaeng))
    }
    return {
        "unseong_schools": schools,
        "twelve_stages": {pos: STAGES_KO[changsheng(day_gan, p.zhi)] for pos, p in zip(POSITIONS, ps)},
        "twelve_stages_self": {pos: STAGES_KO[changsheng(p.gan, p.zhi)]
                               for pos, p in zip(POSITIONS, ps)},
        "gongmang": {"day": [branch_code(z) for z in xunkong(ps[2].gan, ps[2].zhi)],
                     "year": [branch_code(z) for z in xunkong(ps[0].gan, ps[0].zhi)]},
        "napeum": {pos: napeum_entry(nayin(p.name)) for pos, p in zip(POSITIONS, ps)},
        "sinsal12_year": sinsal12(ps[0].zhi),
        "sinsal12_day": sinsal12(ps[2].zhi),
        "sinsal": sinsal,
        "self_punishment": self_pun,
        "strength": {"verdict": "신강" if score >= 55 else "신약" if score <= 45 else "중화",
                     "score": score, "deuk_ryeong": st["de_ling"].startswith("得令")},
    }


def _lunar_python_from_birth(stamp: str) -> dict:
    from lunar_python import Solar

    dt = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    ec = Solar.fromYmdHms(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second) \
        .getLunar().getEightChar()
    ec.setSect(2)
    codes = []
    for gz in (ec.getYear(), ec.getMonth(), ec.getDay(), ec.getTime()):
        codes += pillar_codes(gz)
    return {"pillars": codes, "tae_won": pillar_codes(ec.getTaiYuan()),
            "myeong_gung": pillar_codes(ec.getMingGong())}


def extras_line(line: str) -> dict:
    parts = line.split()
    codes = [int(x) for x in parts[:8]]
    if len(codes) != 8 or any(not (0 <= codes[2 * i] <= 9 and 10 <= codes[2 * i + 1] <= 21
                                   and codes[2 * i] % 2 == (codes[2 * i + 1] - 10) % 2)
                              for i in range(4)):
        raise SystemExit(f"extras: not eight valid pillar codes: {line!r}")
    gz = [STEMS[codes[2 * i]] + BRANCHES[codes[2 * i + 1] - 10] for i in range(4)]
    libs = {"korean_saju": _korean_saju(codes), "lunar_python": _lunar_python(gz),
            "bazi_chart": _bazi_chart(codes)}
    items = ("twelve_stages", "twelve_stages_self", "gongmang", "napeum", "sinsal12_year",
             "sinsal12_day", "sinsal", "self_punishment", "wonjin", "gwimun", "tae_won",
             "tae_sik", "myeong_gung", "sin_gung", "strength", "unseong_schools")
    out = {item: {lib: ans[item] for lib, ans in libs.items() if item in ans} for item in items}
    if len(parts) > 8:
        out["from_birth"] = {"lunar_python": _lunar_python_from_birth(" ".join(parts[8:10]))}
    return out


def extras() -> None:
    import json

    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        out.write(json.dumps(extras_line(line), ensure_ascii=False, separators=(",", ":")) + "\n")


COMMANDS = {"pillars": pillars, "luck": luck, "lunar-days": lunar_days, "lunar-valid": lunar_valid,
            "zone": zone, "extras": extras}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]]()
