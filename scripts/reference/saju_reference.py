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


COMMANDS = {"pillars": pillars, "luck": luck, "lunar-days": lunar_days, "lunar-valid": lunar_valid, "zone": zone}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]]()
