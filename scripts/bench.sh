#!/usr/bin/env bash
# Builds rawfeat and runs its benchmarks with their in-run references
# (db_bench from rocksdb-tools, redis-server, DuckDB through its npm
# package). Takes about 35 minutes. Pass --quick for a small smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v redis-server >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
# DuckDB for analyst_load: the npm package, in a local folder.
if ! command -v npm >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d build/duckdb/node_modules/@duckdb/node-api ]; then
  mkdir -p build/duckdb
  npm install --prefix build/duckdb --no-audit --no-fund --silent @duckdb/node-api@1.5.6-r.1
fi
ARGS_INGEST=() ARGS_FEATURES=() ARGS_ANALYST=() ARGS_REPLAY=()
if [ "${1:-}" = "--quick" ]; then
  ARGS_INGEST=(--events 200000)
  ARGS_FEATURES=(--events 300000 --entities 10000 --seconds 2 --warmup_seconds 10)
  ARGS_ANALYST=(--events 300000 --entities 10000 --labels 50000)
  ARGS_REPLAY=(--events 300000 --entities 10000 --copy_events 100000 --backfill_days 5)
fi
build/bench/micro_bench --benchmark_min_time=0.2
build/bench/ingest_load --rawfeatd build/server/rawfeatd "${ARGS_INGEST[@]}"
build/bench/features_load --rawfeatd build/server/rawfeatd --redis_server="$(command -v redis-server)" "${ARGS_FEATURES[@]}"
build/bench/analyst_load --rawfeatd build/server/rawfeatd --duckdb_modules build/duckdb/node_modules "${ARGS_ANALYST[@]}"
build/bench/replay_load --rawfeatd build/server/rawfeatd --rawfeat build/client/rawfeat "${ARGS_REPLAY[@]}"
