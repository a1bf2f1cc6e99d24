#!/usr/bin/env python3
"""Helpers of scripts/check-dashboard (python3 standard library only).

  check_dashboard.py ports N                   N free TCP ports on 127.0.0.1, one a line
  check_dashboard.py png PATH WIDTH HEIGHT     writes a small RGB PNG
  check_dashboard.py wait-metrics TIMEOUT URL=NAME{label="v"}>=N ...
                                               waits until, on each worker's /metrics, the
                                               samples matching NAME{...} sum to N or more
  check_dashboard.py wait-scraped PROM_URL TIMEOUT JOB...
                                               waits until Prometheus holds two successful
                                               scrapes of every job (the baseline before a workload)
  check_dashboard.py wait-series PROM_URL TIMEOUT EXPR...
                                               waits until every expression returns a series
  check_dashboard.py panels DASHBOARD PROM_URL [TIMEOUT]
                                               runs every panel target of the dashboard against
                                               Prometheus' /api/v1/query; exit 1 when a panel not
                                               marked "(Redpanda only)" returns no series (or only
                                               NaN), a query fails, or a marked panel has data
"""

import glob
import json
import math
import os
import re
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

REDPANDA_ONLY = "(Redpanda only)"

# What Grafana substitutes for its built-in variables. $__rate_interval is what Grafana
# computes for the compose stack's 10 s scrape interval (4 x scrape interval).
BUILTINS = {
    "__rate_interval": "40s",
    "__interval": "10s",
    "__interval_ms": "10000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}


def free_ports(count):
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def write_png(path, width, height):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in ((x * 7 + y * 3) % 256, (x * 13) % 256, (y * 29) % 256))
        for y in range(height)
    )
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )
    with open(path, "wb") as out:
        out.write(png)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(url):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        labels = frozenset(LABEL.findall(match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def wait_metrics(timeout, conditions):
    """Each condition is `URL=NAME{l="v",...}>=N`: the sum of matching samples reaches N."""
    parsed = []
    for condition in conditions:
        url, rest = condition.split("=", 1)
        selector, bound = rest.rsplit(">=", 1)
        name, _, labels = selector.partition("{")
        wanted = frozenset(LABEL.findall(labels.rstrip("}")))
        parsed.append((condition, url, name, wanted, float(bound)))
    deadline = time.monotonic() + timeout
    while True:
        missing = []
        cache = {}
        for condition, url, name, wanted, bound in parsed:
            try:
                samples = cache.setdefault(url, scrape(url))
            except (OSError, urllib.error.URLError) as e:
                missing.append(f"{condition} (scrape failed: {e})")
                continue
            total = sum(v for (n, labels), v in samples.items() if n == name and wanted <= labels)
            if total < bound:
                missing.append(f"{condition} (now {total:g})")
        if not missing:
            return 0
        if time.monotonic() > deadline:
            print("check-dashboard: the workload did not show on the workers' metrics:", file=sys.stderr)
            for line in missing:
                print(f"  {line}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def wait_scraped(prom_url, timeout, jobs):
    """Prometheus applies new targets a few seconds after start-up: wait for real samples."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = query(prom_url, "min by (job) (count_over_time(up[1m]) and on (job, instance) (up == 1))")
            scraped = {s["metric"].get("job"): float(s["value"][1]) for s in data["result"]}
        except (OSError, ValueError, urllib.error.URLError):
            scraped = {}
        waiting = [job for job in jobs if scraped.get(job, 0) < 2]
        if not waiting:
            return 0
        if time.monotonic() > deadline:
            print(f"check-dashboard: Prometheus did not scrape {', '.join(waiting)}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def wait_series(prom_url, timeout, exprs):
    deadline = time.monotonic() + timeout
    while True:
        waiting = []
        for expr in exprs:
            try:
                if not query(prom_url, expr)["result"]:
                    waiting.append(expr)
            except (OSError, ValueError, urllib.error.URLError):
                waiting.append(expr)
        if not waiting:
            return 0
        if time.monotonic() > deadline:
            print(f"check-dashboard: no series in Prometheus for {', '.join(waiting)}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def substitute(expr, variables):
    def value(match):
        name = match.group(1) or match.group(2) or match.group(3)
        if name in variables:
            return variables[name]
        raise KeyError(f"unknown variable ${name} in {expr!r}")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", value, expr)


def template_variables(dashboard):
    variables = dict(BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if current in (None, "", "$__all", "All"):
            current = var.get("allValue") or ".*"
        variables[var["name"]] = str(current)
    return variables


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def query(prom_url, expr):
    url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def finite_values(data):
    if data["resultType"] == "vector":
        values = [float(s["value"][1]) for s in data["result"]]
    elif data["resultType"] == "scalar":
        values = [float(data["result"][1])]
    else:
        values = []
    return len(data["result"]) if data["resultType"] == "vector" else 1, [v for v in values if math.isfinite(v)]


def provisioned_datasources():
    """Datasource uids of the repository's deploy/grafana/provisioning/datasources/*.yml."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    uids = set()
    for name in glob.glob(os.path.join(repo, "deploy", "grafana", "provisioning", "datasources", "*.y*ml")):
        with open(name) as f:
            uids.update(re.findall(r"^\s*uid:\s*['\"]?([\w-]+)", f.read(), re.M))
    return uids


def check_panels(path, prom_url, timeout):
    with open(path) as f:
        dashboard = json.load(f)
    variables = template_variables(dashboard)
    problems = []
    targets = []
    # What Grafana's file provisioning needs: a uid, unique panel ids, the provisioned datasource.
    datasources = provisioned_datasources()
    ids = [panel.get("id") for panel in panels_of(dashboard)]
    if not dashboard.get("uid"):
        problems.append("the dashboard has no uid")
    if None in ids or len(ids) != len(set(ids)):
        problems.append(f"panel ids missing or repeated: {ids}")
    for panel in panels_of(dashboard):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", f"panel {panel.get('id')}")
        for source in [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]:
            uid = (source or {}).get("uid")
            if datasources and uid not in datasources:
                problems.append(f"{title}: datasource {uid!r} is not provisioned ({', '.join(sorted(datasources))})")
        redpanda_only = title.endswith(REDPANDA_ONLY)
        if redpanda_only and "redpanda" not in panel.get("description", "").lower():
            problems.append(f"{title}: marked {REDPANDA_ONLY} but its description does not say why")
        if not panel.get("targets"):
            problems.append(f"{title}: no query")
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if not redpanda_only and "redpanda_" in expr:
                problems.append(f"{title}: reads Redpanda's metrics but is not marked {REDPANDA_ONLY}")
            try:
                targets.append((title, target.get("refId", "?"), substitute(expr, variables), redpanda_only))
            except KeyError as e:
                problems.append(f"{title}: {e.args[0]}")

    # Counters need two scrapes inside the rate window; give Prometheus a little time.
    deadline = time.monotonic() + timeout
    while True:
        results = []
        for title, ref, expr, redpanda_only in targets:
            try:
                series, values = finite_values(query(prom_url, expr))
                results.append((title, ref, expr, redpanda_only, series, values, None))
            except ValueError as e:
                results.append((title, ref, expr, redpanda_only, 0, [], str(e)))
        empty = [r for r in results if not r[3] and (r[6] or not r[5])]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(1)

    print(f"{'panel':<52} {'ref':<3} {'series':>6} {'max':>12}  result")
    for title, ref, expr, redpanda_only, series, values, error in results:
        top = f"{max(values):.4g}" if values else "-"
        if error:
            verdict = f"FAIL: query error: {error}"
        elif redpanda_only:
            verdict = "FAIL: data without Redpanda" if series else "skipped (Redpanda only; query parses)"
        elif not values:
            verdict = "FAIL: no data" if series == 0 else "FAIL: only NaN"
        else:
            verdict = "ok"
        print(f"{title[:52]:<52} {ref:<3} {series:>6} {top:>12}  {verdict}")
        if error or (not redpanda_only and not values):
            problems.append(f"{title} [{ref}] {verdict[len('FAIL: '):]}: {expr}")
        elif redpanda_only and series:
            problems.append(f"{title} [{ref}] returns data without Redpanda: it is not {REDPANDA_ONLY}")
    if problems:
        print(f"\ncheck-dashboard: {len(problems)} problem(s):", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    checked = sum(1 for r in results if not r[3])
    print(f"\nevery panel returns data: {checked} queries checked, "
          f"{len(results) - checked} (Redpanda only) parsed but not required to")
    return 0


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    command, args = argv[1], argv[2:]
    if command == "ports":
        print("\n".join(map(str, free_ports(int(args[0])))))
        return 0
    if command == "png":
        write_png(args[0], int(args[1]), int(args[2]))
        return 0
    if command == "wait-metrics":
        return wait_metrics(float(args[0]), args[1:])
    if command == "wait-scraped":
        return wait_scraped(args[0].rstrip("/"), float(args[1]), args[2:])
    if command == "wait-series":
        return wait_series(args[0].rstrip("/"), float(args[1]), args[2:])
    if command == "panels":
        return check_panels(args[0], args[1].rstrip("/"), float(args[2]) if len(args) > 2 else 20)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
