#!/usr/bin/env bash
# Builds rawfeat and runs its benchmarks with their in-run references
# (db_bench from rocksdb-tools, redis-server). Takes about 10 minutes.
# Pass --quick for a small smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v redis-server >/dev/null; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
ARGS_INGEST=() ARGS_FEATURES=()
if [ "${1:-}" = "--quick" ]; then
  ARGS_INGEST=(--events 200000)
  ARGS_FEATURES=(--events 300000 --entities 10000 --seconds 2 --warmup_seconds 10)
fi
build/bench/micro_bench --benchmark_min_time=0.2
build/bench/ingest_load --rawfeatd build/server/rawfeatd "${ARGS_INGEST[@]}"
build/bench/features_load --rawfeatd build/server/rawfeatd --redis_server="$(command -v redis-server)" "${ARGS_FEATURES[@]}"
