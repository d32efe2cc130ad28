#!/usr/bin/env bash
# CLI end to end: spawn rawfeatd and the rawfeat CLI, apply the example
# schemas, ingest a CSV twice (exact count), replay equals the input, and
# bad input exits non-zero with a line number.
# Usage: cli_e2e_test.sh RAWFEATD RAWFEAT SCHEMAS_DIR
set -euo pipefail
RAWFEATD=$1 RAWFEAT=$2 SCHEMAS=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rawfeat-cli-XXXXXX")
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# No schemas at start: the CLI applies them.
"$RAWFEATD" --listen=127.0.0.1:0 --data_dir="$WORK/data" \
  --port_file="$WORK/port" 2>"$WORK/server.log" &
PID=$!
for _ in $(seq 1 200); do [ -s "$WORK/port" ] && break; sleep 0.05; done
[ -s "$WORK/port" ] || fail "server did not start"
CLI=("$RAWFEAT" --server "127.0.0.1:$(cat "$WORK/port")")

"${CLI[@]}" apply "$SCHEMAS" --dry-run > "$WORK/dry.txt"
grep -q "would add stream 'orders'" "$WORK/dry.txt" || fail "dry run diff: $(cat "$WORK/dry.txt")"
"${CLI[@]}" apply "$SCHEMAS" > "$WORK/apply.txt"
grep -q "add view 'user_orders' version 1" "$WORK/apply.txt" || fail "apply: $(cat "$WORK/apply.txt")"
"${CLI[@]}" apply "$SCHEMAS" | grep -q "no changes" || fail "re-apply is not a no-op"

# 1000 rows in the canonical replay format: quotes, commas, empty optionals.
IN="$WORK/orders.csv"
{
  echo "event_id,user_id,order_time,amount,quantity,category,coupon,is_gift"
  for i in $(seq 1 1000); do
    case $((i % 4)) in
      0) cat='"toys, games"'; coupon=SAVE10; gift=true ;;
      1) cat='"say ""hi"""'; coupon=; gift= ;;
      2) cat=books; coupon=; gift=false ;;
      3) cat=food; coupon=X; gift= ;;
    esac
    printf 'o%d,u%d,2026-11-%02dT%02d:%02d:00.%06dZ,%d.25,%d,%s,%s,%s\n' \
      "$i" $((i % 37)) $((1 + i % 28)) $((i % 24)) $((i % 60)) "$i" "$i" $((i % 5)) \
      "$cat" "$coupon" "$gift"
  done
} > "$IN"

"${CLI[@]}" ingest --stream orders "$IN" --batch-size 128 > "$WORK/i1.txt"
grep -q "1000 rows read, 1000 accepted, 0 duplicates" "$WORK/i1.txt" || fail "first ingest: $(cat "$WORK/i1.txt")"
"${CLI[@]}" ingest --stream orders "$IN" > "$WORK/i2.txt"
grep -q "1000 rows read, 0 accepted, 1000 duplicates" "$WORK/i2.txt" || fail "second ingest: $(cat "$WORK/i2.txt")"
"${CLI[@]}" status > "$WORK/status.txt"
grep -Eq "stream +orders +1000 events" "$WORK/status.txt" || fail "status: $(cat "$WORK/status.txt")"

"${CLI[@]}" replay --stream orders --out "$WORK/replay.csv" 2>/dev/null
if ! cmp -s "$IN" "$WORK/replay.csv"; then
  diff "$IN" "$WORK/replay.csv" | head -5 >&2 || true
  fail "replay CSV differs from the input"
fi
"${CLI[@]}" replay --stream orders --out "$WORK/replay.jsonl" 2>/dev/null
[ "$(wc -l < "$WORK/replay.jsonl")" -eq 1000 ] || fail "replay jsonl lines"
# JSON Lines written by replay ingest back as pure duplicates.
"${CLI[@]}" ingest --stream orders "$WORK/replay.jsonl" | grep -q "0 accepted, 1000 duplicates" \
  || fail "jsonl re-ingest"
"${CLI[@]}" replay --stream orders --entity u5 --from 2026-11-10T00:00:00Z \
  --out "$WORK/u5.jsonl" 2>/dev/null
want=$(awk -F, 'NR>1 && $2=="u5" && $3>="2026-11-10"' "$IN" | wc -l)
[ "$(wc -l < "$WORK/u5.jsonl")" -eq "$want" ] || fail "entity/time filter"

# get: the view's features for entities as of a time; counts are exact.
"${CLI[@]}" get --view user_orders --entity u5,nobody --as-of 2026-12-01T00:00:00Z \
  --format csv > "$WORK/get.csv" 2>/dev/null
want=$(awk -F, 'NR>1 && $2=="u5" && $3>="2026-11-24"' "$IN" | wc -l)
awk -F, -v w="$want" 'NR==2 && $1=="u5" && $3==w {ok=1} END {exit !ok}' "$WORK/get.csv" \
  || fail "get orders_7d for u5 (want $want): $(cat "$WORK/get.csv")"
grep -q "^nobody,0,0,0," "$WORK/get.csv" || fail "get for an unknown entity: $(cat "$WORK/get.csv")"
"${CLI[@]}" get --view user_orders --entity u5 --as-of 1796083200s --format json 2>/dev/null \
  | grep -q '"entity":"u5"' || fail "get with an epoch-seconds as-of"
for bad in yesterday 1796083200 2026-13-01T00:00:00Z; do
  if "${CLI[@]}" get --view user_orders --entity u5 --as-of "$bad" 2> "$WORK/asof.err"; then
    fail "bad --as-of '$bad' accepted"
  fi
  grep -q -- "--as-of" "$WORK/asof.err" || fail "bad as-of message: $(cat "$WORK/asof.err")"
  [ "$(wc -l < "$WORK/asof.err")" -eq 1 ] || fail "as-of error is not one line"
done
if "${CLI[@]}" get --view nope --entity u5 2> "$WORK/nope.err"; then fail "unknown view accepted"; fi
grep -q "NOT_FOUND" "$WORK/nope.err" || fail "unknown view: $(cat "$WORK/nope.err")"

# A malformed line fails with its line number and writes nothing.
BAD="$WORK/bad.csv"
printf 'user_id,order_time,amount,quantity,category\nu1,2026-11-01T00:00:00Z,1,1,a\nu2,2026-11-01T00:00:00Z,notanumber,1,b\n' > "$BAD"
if "${CLI[@]}" ingest --stream orders "$BAD" 2> "$WORK/bad.err"; then fail "bad CSV accepted"; fi
grep -q "line 3: column 'amount'" "$WORK/bad.err" || fail "bad CSV message: $(cat "$WORK/bad.err")"
[ "$(wc -l < "$WORK/bad.err")" -eq 1 ] || fail "error is not one line"
"${CLI[@]}" status | grep -Eq "orders +1000 events" || fail "bad CSV wrote something"

# --skip-invalid writes the good rows and lists the bad ones.
"${CLI[@]}" ingest --stream orders "$BAD" --skip-invalid --reject-file "$WORK/rejects.txt" > "$WORK/skip.txt"
grep -q "1 accepted" "$WORK/skip.txt" || fail "skip-invalid: $(cat "$WORK/skip.txt")"
grep -q "^line 3: " "$WORK/rejects.txt" || fail "reject file: $(cat "$WORK/rejects.txt")"

# Unknown server: one line, non-zero.
if "$RAWFEAT" --server 127.0.0.1:1 status 2> "$WORK/down.err"; then fail "status on a dead port"; fi
[ "$(wc -l < "$WORK/down.err")" -eq 1 ] || fail "down error is not one line"
echo "cli e2e: ok"
