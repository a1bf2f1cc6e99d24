#!/usr/bin/env python3
"""The checkpoints PostgreSQL ran during a window, from its log, for `scripts/bench e2e`.

    checkpoints_during.py POSTGRES_LOG START END    # START, END: epoch seconds

Prints one line: every checkpoint whose run overlaps the window, with what started it and its
start and end in seconds from START (a checkpoint still running at the end has no end), or
"no checkpoint". A checkpoint's writes and the full-page images after its start slow every
transaction on a small machine, so the steady phase's tail reads differently with one inside.
Needs `log_checkpoints` (on by default since PostgreSQL 15) and the log's `%m` timestamps in
UTC (the stack's cluster).
"""

import re
import sys
from datetime import datetime, timezone

LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC \[\d+\] LOG:  checkpoint (starting|complete)(?:: (.*))?$"
)


def seconds(stamp):
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(stamp, fmt).replace(tzinfo=timezone.utc).timestamp()


def checkpoints(lines):
    """(start, end or None, what started it) of every checkpoint in the log, in order."""
    runs, open_run = [], None
    for line in lines:
        m = LINE.match(line.rstrip("\n"))
        if not m:
            continue
        at, event, detail = seconds(m.group(1)), m.group(2), m.group(3) or ""
        if event == "starting":
            open_run = (at, detail.split()[0] if detail else "?")
        elif open_run is not None:
            runs.append((open_run[0], at, open_run[1]))
            open_run = None
    if open_run is not None:
        runs.append((open_run[0], None, open_run[1]))
    return runs


def during(runs, start, end):
    shown = []
    for began, ended, why in runs:
        if began > end or (ended is not None and ended < start):
            continue
        until = "still running" if ended is None else f"{ended - start:+.0f} s"
        shown.append(f"checkpoint ({why}) from {began - start:+.0f} s to {until}")
    return "; ".join(shown) if shown else "no checkpoint"


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    try:
        with open(argv[1], encoding="utf-8", errors="replace") as log:
            runs = checkpoints(log)
    except OSError as e:
        print(f"(no PostgreSQL log: {e.strerror})")
        return
    print(during(runs, float(argv[2]), float(argv[3])))


if __name__ == "__main__":
    main(sys.argv)
