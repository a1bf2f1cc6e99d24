#!/usr/bin/env bash
# Creates the topics listed in topics.conf with rpk, and brings the settings of
# topics that already exist in line with the file. Safe to run repeatedly.
#
# Environment:
#   KAFKA_BROKERS  comma-separated bootstrap servers (default 127.0.0.1:9092)
#   TOPICS_FILE    topic list (default: topics.conf next to this script)
#   REPLICAS       replication factor for new topics (default: cluster default)
#   RPK            rpk executable (default: rpk)
#   WAIT_SECONDS   how long to wait for the broker to answer (default 60)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
brokers="${KAFKA_BROKERS:-127.0.0.1:9092}"
topics_file="${TOPICS_FILE:-$here/topics.conf}"
rpk="${RPK:-rpk}"
wait_seconds="${WAIT_SECONDS:-60}"

rpk_() { "$rpk" -X "brokers=$brokers" "$@"; }

if [[ ! -r "$topics_file" ]]; then
    echo "create-topics: cannot read $topics_file" >&2
    exit 2
fi

deadline=$((SECONDS + wait_seconds))
until rpk_ cluster info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
        echo "create-topics: no broker answered at $brokers within ${wait_seconds}s" >&2
        exit 1
    fi
    sleep 1
done

failures=0
while read -r name partitions configs_line; do
    [[ -z "${name:-}" || "$name" == \#* ]] && continue
    if ! [[ "$partitions" =~ ^[0-9]+$ ]]; then
        echo "create-topics: $name: partition count '$partitions' is not a number" >&2
        failures=$((failures + 1))
        continue
    fi
    read -r -a configs <<<"${configs_line:-}"

    if rpk_ topic describe "$name" >/dev/null 2>&1; then
        if ((${#configs[@]} > 0)); then
            set_args=()
            for kv in "${configs[@]}"; do set_args+=(--set "$kv"); done
            if rpk_ topic alter-config "$name" "${set_args[@]}" >/dev/null; then
                echo "create-topics: $name exists; settings applied"
            else
                echo "create-topics: $name: could not apply ${configs[*]}" >&2
                failures=$((failures + 1))
            fi
        else
            echo "create-topics: $name exists"
        fi
        continue
    fi

    create_args=(topic create "$name" -p "$partitions")
    [[ -n "${REPLICAS:-}" ]] && create_args+=(-r "$REPLICAS")
    for kv in "${configs[@]}"; do create_args+=(-c "$kv"); done
    if rpk_ "${create_args[@]}"; then
        echo "create-topics: created $name ($partitions partitions${configs[*]:+, ${configs[*]}})"
    else
        echo "create-topics: $name: create failed" >&2
        failures=$((failures + 1))
    fi
done <"$topics_file"

if ((failures > 0)); then
    echo "create-topics: $failures topic(s) failed" >&2
    exit 1
fi
