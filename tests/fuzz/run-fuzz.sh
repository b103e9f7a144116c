#!/bin/sh
# Runs each libFuzzer target for SECONDS seconds on a corpus kept under
# build/fuzz/corpus/<target>, seeded from tests/data/<target>/ if present.
# Usage: run-fuzz.sh SECONDS TARGET...
set -eu
secs=$1
shift
status=0
for bin in "$@"; do
        name=$(basename "$bin")
        corpus=build/fuzz/corpus/$name
        mkdir -p "$corpus"
        seeds=
        [ -d "tests/data/$name" ] && seeds="tests/data/$name"
        echo "fuzz: $name for ${secs}s"
        if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="build/fuzz/$name-" "$corpus" $seeds 2>build/fuzz/$name.log; then
                echo "fuzz: $name FOUND A PROBLEM (see build/fuzz/$name.log):"
                tail -n 40 "build/fuzz/$name.log"
                status=1
        else
                grep -E 'stat::number_of_executed_units|stat::peak_rss' "build/fuzz/$name.log" | sed "s/^/fuzz: $name /"
        fi
done
exit $status
