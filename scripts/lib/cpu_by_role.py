#!/usr/bin/env python3
"""CPU time spent by each part of the pipeline, for the cost breakdown of `scripts/bench e2e`.

    cpu_by_role.py snapshot OUT.json DATABASE_URL ROLE=PID...   # e.g. cdc-reader=123
    cpu_by_role.py diff BEFORE.json AFTER.json ROWS             # table of CPU s and µs a row

A snapshot records user+system CPU seconds (from /proc) of the named processes and of every
PostgreSQL server process, the latter by role from pg_stat_activity: the walsender that decodes
for the reader (`postgres: wal decoding`), the analyzer's connections (`postgres: analyzer
write-back`), the reader's own queries (`postgres: reader queries`), other client backends
(`postgres: clients`: the benchmark's inserts) and the server's own background work
(`postgres: background`: checkpointer, WAL writer, autovacuum…). Processes that ended between
two snapshots are counted through the postmaster's reaped-children times, as background.
"""

import json
import os
import subprocess
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def times(pid):
    """(own user+system, reaped children's user+system) CPU seconds of a process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, so utime (14) is index 11 here.
    own = (int(fields[11]) + int(fields[12])) / TICKS
    children = (int(fields[13]) + int(fields[14])) / TICKS
    return own, children


def postgres_roles(url):
    out = subprocess.run(
        ["psql", "-Atq", "-F", "\t", url, "-c",
         "SELECT pid, backend_type, coalesce(application_name, '') FROM pg_stat_activity"],
        check=True, capture_output=True, text=True).stdout
    roles = {}
    for line in out.splitlines():
        pid, kind, app = line.split("\t")
        if kind == "walsender":
            role = "postgres: wal decoding"
        elif kind == "client backend" and app.startswith("analyzer"):
            role = "postgres: analyzer write-back"
        elif kind == "client backend" and app.startswith("cdc-reader"):
            role = "postgres: reader queries"
        elif kind == "client backend":
            role = "postgres: clients"
        else:
            role = "postgres: background"
        roles[int(pid)] = role
    return roles


def postmaster_pid(url):
    data_dir = subprocess.run(["psql", "-Atq", url, "-c", "SHOW data_directory"],
                              check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(data_dir, "postmaster.pid"), encoding="ascii") as f:
        return int(f.readline())


def snapshot(out, url, named):
    processes = {}
    for item in named:
        role, pid = item.split("=", 1)
        processes[pid] = {"role": role, "cpu": times(int(pid))[0]}
    master = postmaster_pid(url)
    own, reaped = times(master)
    processes[str(master)] = {"role": "postgres: background", "cpu": own + reaped}
    for pid, role in postgres_roles(url).items():
        try:
            processes[str(pid)] = {"role": role, "cpu": times(pid)[0]}
        except (FileNotFoundError, ProcessLookupError):
            pass  # the backend exited after pg_stat_activity listed it
    with open(out, "w", encoding="utf-8") as f:
        json.dump(processes, f)


def diff(before_file, after_file, rows):
    with open(before_file, encoding="utf-8") as f:
        before = json.load(f)
    with open(after_file, encoding="utf-8") as f:
        after = json.load(f)
    by_role = {}
    for pid, entry in after.items():
        start = before.get(pid, {}).get("cpu", 0.0)
        by_role[entry["role"]] = by_role.get(entry["role"], 0.0) + max(entry["cpu"] - start, 0.0)
    total = sum(by_role.values())
    rows = int(rows)
    for role, seconds in sorted(by_role.items(), key=lambda kv: -kv[1]):
        print(f"cpu {role:32} {seconds:7.2f} s  {seconds * 1e6 / rows:7.1f} µs a row  "
              f"{100 * seconds / total if total else 0.0:5.1f} %")
    print(f"cpu {'total':32} {total:7.2f} s  {total * 1e6 / rows:7.1f} µs a row")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "snapshot":
        snapshot(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) == 5 and sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
