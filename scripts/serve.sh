#!/usr/bin/env bash
# Sets up, builds and runs rawfeatd on 127.0.0.1:7070 with the example
# schemas applied and its data in ./data. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec ./build/server/rawfeatd --listen 127.0.0.1:7070 --data_dir ./data \
  --schemas schemas "$@"
