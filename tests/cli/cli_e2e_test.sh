#!/usr/bin/env bash
# CLI end to end: spawn rawfeatd and the rawfeat CLI, apply the example
# schemas, ingest a CSV twice (exact count), replay equals the input, and
# bad input exits non-zero with a line number.
# Usage: cli_e2e_test.sh RAWFEATD RAWFEAT SCHEMAS_DIR
set -euo pipefail
RAWFEATD=$1 RAWFEAT=$2 SCHEMAS=$3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rawfeat-cli-XXXXXX")
PID="" PID2=""
cleanup() {
  set +e
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ -n "$PID2" ] && kill "$PID2" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
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
grep -q "^nobody,0,0,0.0,,,0,0,,,,,0,0$" "$WORK/get.csv" || fail "get for an unknown entity: $(cat "$WORK/get.csv")"
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

# snapshot: every entity with an event before T, the view's features, and
# a sidecar with the watermark.
T=2026-11-20T00:00:00Z
"${CLI[@]}" snapshot --view user_orders --as-of "$T" --out "$WORK/snap.csv" 2>/dev/null
want=$(awk -F, 'NR>1 && $3<"2026-11-20" {print $2}' "$IN" | sort -u | wc -l)
[ "$(($(wc -l < "$WORK/snap.csv") - 1))" -eq "$want" ] || fail "snapshot rows (want $want)"
head -1 "$WORK/snap.csv" | grep -q "^entity,orders_1h,orders_7d," || fail "snapshot header: $(head -1 "$WORK/snap.csv")"
W=$(sed -n 's/.*"watermark": \([0-9]*\).*/\1/p' "$WORK/snap.csv.meta.json")
[ -n "$W" ] && [ "$W" -gt 0 ] || fail "snapshot meta: $(cat "$WORK/snap.csv.meta.json")"
[ ! -e "$WORK/snap.csv.partial" ] || fail "partial snapshot file left behind"
"${CLI[@]}" snapshot --view user_orders --as-of "$T" --out "$WORK/snap.jsonl" 2>/dev/null
[ "$(wc -l < "$WORK/snap.jsonl")" -eq "$want" ] || fail "snapshot jsonl rows"

# join: label rows keep their columns (and order), features as of each row's
# time; a label at T equals the snapshot at T.
LABELS="$WORK/labels.csv"
{
  echo 'label_id,user_id,ts,note'
  echo "l1,u5,$T,\"a, \"\"quoted\"\" note\""
  echo 'l2,nobody,2026-11-20T00:00:00Z,'
  echo 'l3,u1,2026-11-05T09:00:00+09:00,x'
  echo "l4,u5,$T,dup"
  echo 'l5,u2,1795000000s,epoch'
} > "$LABELS"
"${CLI[@]}" join --view user_orders --labels "$LABELS" --time-column ts \
  --out "$WORK/train.csv" 2>/dev/null
[ "$(wc -l < "$WORK/train.csv")" -eq 6 ] || fail "join rows: $(cat "$WORK/train.csv")"
head -1 "$WORK/train.csv" | grep -q "^label_id,user_id,ts,note,orders_1h," || fail "join header"
grep -q '^l1,u5,2026-11-20T00:00:00Z,"a, ""quoted"" note",' "$WORK/train.csv" || fail "join passthrough: $(sed -n 2p "$WORK/train.csv")"
awk -F, 'NR>1 {print $1}' "$WORK/train.csv" | tr '\n' ' ' | grep -q "^l1 l2 l3 l4 l5 $" || fail "join order"
snap_u5=$(grep '^u5,' "$WORK/snap.csv" | cut -d, -f2-)
join_u5=$(grep '^l4,' "$WORK/train.csv" | cut -d, -f5-)
[ "$snap_u5" = "$join_u5" ] || fail "join at T differs from snapshot at T: '$join_u5' vs '$snap_u5'"
grep -q '^l2,nobody,2026-11-20T00:00:00Z,,0,0,0.0,' "$WORK/train.csv" || fail "join for an unknown entity"
grep -q '"watermark": '"$W" "$WORK/train.csv.meta.json" || fail "join meta: $(cat "$WORK/train.csv.meta.json")"

# Late events for u5 before T: at the recorded watermark both files come
# back byte for byte; at the latest they change.
printf 'event_id,user_id,order_time,amount,quantity,category\nlate1,u5,2026-11-19T12:00:00Z,999,1,late\n' > "$WORK/late.csv"
"${CLI[@]}" ingest --stream orders "$WORK/late.csv" > /dev/null
"${CLI[@]}" snapshot --view user_orders --as-of "$T" --watermark "$W" --out "$WORK/snap2.csv" 2>/dev/null
cmp -s "$WORK/snap.csv" "$WORK/snap2.csv" || fail "snapshot at watermark $W is not byte-identical"
"${CLI[@]}" join --view user_orders --labels "$LABELS" --time-column ts --watermark "$W" \
  --out "$WORK/train2.csv" 2>/dev/null
cmp -s "$WORK/train.csv" "$WORK/train2.csv" || fail "join at watermark $W is not byte-identical"
"${CLI[@]}" snapshot --view user_orders --as-of "$T" --out "$WORK/snap3.csv" 2>/dev/null
! cmp -s "$WORK/snap.csv" "$WORK/snap3.csv" || fail "late event not visible at the latest watermark"

# Bad label files: one line naming the file and line, nothing written.
printf 'user_id,ts\nu1,2026-11-20T00:00:00Z\nu2,2026-11-20T00:00:00Z,extra\n' > "$WORK/ragged.csv"
if "${CLI[@]}" join --view user_orders --labels "$WORK/ragged.csv" --time-column ts \
  --out "$WORK/bad-out.csv" 2> "$WORK/ragged.err"; then fail "ragged labels accepted"; fi
grep -q "ragged.csv line 3: 3 cells, the header has 2" "$WORK/ragged.err" || fail "ragged: $(cat "$WORK/ragged.err")"
[ ! -e "$WORK/bad-out.csv" ] || fail "a failed join left its output"
printf 'user_id,ts\nu1,yesterday\n' > "$WORK/badtime.csv"
if "${CLI[@]}" join --view user_orders --labels "$WORK/badtime.csv" --time-column ts \
  --out "$WORK/bad-out.csv" 2> "$WORK/badtime.err"; then fail "bad label time accepted"; fi
grep -q "line 2: column 'ts'" "$WORK/badtime.err" || fail "bad time: $(cat "$WORK/badtime.err")"
if "${CLI[@]}" join --view user_orders --labels "$WORK/badtime.csv" \
  --out "$WORK/bad-out.csv" 2> "$WORK/nocol.err"; then fail "missing time column accepted"; fi
grep -q "no column 'order_time' (set --time-column)" "$WORK/nocol.err" || fail "no column: $(cat "$WORK/nocol.err")"
if "${CLI[@]}" join --view user_orders --labels "$LABELS" --time-column ts --entity-column uid \
  --out "$WORK/bad-out.csv" 2> "$WORK/noent.err"; then fail "missing entity column accepted"; fi
grep -q "no column 'uid' (set --entity-column)" "$WORK/noent.err" || fail "no entity column: $(cat "$WORK/noent.err")"
if "${CLI[@]}" join --view nope --labels "$LABELS" --out "$WORK/bad-out.csv" 2> "$WORK/nope2.err"; then
  fail "join of an unknown view"
fi
grep -q "NOT_FOUND" "$WORK/nope2.err" || fail "unknown view: $(cat "$WORK/nope2.err")"
"${CLI[@]}" join --view user_orders --labels "$WORK/ragged.csv" --time-column ts \
  --skip-invalid --reject-file "$WORK/label-rejects.txt" --out "$WORK/skip.csv" 2>/dev/null
[ "$(wc -l < "$WORK/skip.csv")" -eq 2 ] || fail "skip-invalid join rows"
grep -q "^line 3: 3 cells" "$WORK/label-rejects.txt" || fail "label reject file: $(cat "$WORK/label-rejects.txt")"

# copy: raw history into a second server, ids kept; twice = no duplicates;
# a copy stopped midway resumes from the seq it printed.
start_server() {  # $1: name, then extra flags; port in $WORK/port-<name>
  "$RAWFEATD" --listen=127.0.0.1:0 --data_dir="$WORK/data-$1" \
    --port_file="$WORK/port-$1" "${@:2}" 2>"$WORK/server-$1.log" &
  PIDS+=($!)
  for _ in $(seq 1 200); do [ -s "$WORK/port-$1" ] && break; sleep 0.05; done
  [ -s "$WORK/port-$1" ] || fail "server $1 did not start"
}
PIDS=()
trap 'set +e; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; cleanup' EXIT
start_server b
start_server c
SRC="127.0.0.1:$(cat "$WORK/port")"
DST="127.0.0.1:$(cat "$WORK/port-b")"
"$RAWFEAT" copy --from "$SRC" --to "$DST" --definitions > "$WORK/copy1.txt" 2>/dev/null
total=$("${CLI[@]}" status | awk '$1=="stream" && $2=="orders" {print $3}')
grep -q "copied $total events ($total new on the target, 0 already there)" "$WORK/copy1.txt" \
  || fail "copy: $(cat "$WORK/copy1.txt") (source has $total)"
"${CLI[@]}" replay --stream orders --out "$WORK/src.csv" 2>/dev/null
"$RAWFEAT" --server "$DST" replay --stream orders --out "$WORK/dst.csv" 2>/dev/null
cmp -s "$WORK/src.csv" "$WORK/dst.csv" || fail "copied events differ from the source"
"$RAWFEAT" copy --from "$SRC" --to "$DST" > "$WORK/copy2.txt" 2>/dev/null
grep -q "(0 new on the target, $total already there)" "$WORK/copy2.txt" || fail "second copy: $(cat "$WORK/copy2.txt")"
DST2="127.0.0.1:$(cat "$WORK/port-c")"
"$RAWFEAT" copy --from "$SRC" --to "$DST2" --definitions --max-events 300 --batch-size 64 \
  > "$WORK/copy3.txt" 2>/dev/null
grep -q "^copied 300 events" "$WORK/copy3.txt" || fail "partial copy: $(cat "$WORK/copy3.txt")"
resume=$(sed -n 's/.*through source seq \([0-9]*\).*/\1/p' "$WORK/copy3.txt")
"$RAWFEAT" copy --from "$SRC" --to "$DST2" --after-seq "$resume" > "$WORK/copy4.txt" 2>/dev/null
grep -q "($((total - 300)) new on the target, 0 already there)" "$WORK/copy4.txt" \
  || fail "resumed copy: $(cat "$WORK/copy4.txt")"
"$RAWFEAT" --server "$DST2" replay --stream orders --out "$WORK/dst2.csv" 2>/dev/null
cmp -s "$WORK/src.csv" "$WORK/dst2.csv" || fail "resumed copy differs from the source"

# copy takes one token per side: into a server with tokens (the global
# token is wrong for it), then out of it.
printf 'principals { name: "ops" role: "admin" token_sha256: "%s" }\n' \
  "$(printf %s copy-admin | sha256sum | cut -d' ' -f1)" > "$WORK/auth.textproto"
chmod 600 "$WORK/auth.textproto"
printf 'copy-admin\n' > "$WORK/admin.token"
start_server d --auth_file="$WORK/auth.textproto"
DST3="127.0.0.1:$(cat "$WORK/port-d")"
if RAWFEAT_TOKEN=wrong "$RAWFEAT" copy --from "$SRC" --to "$DST3" --definitions \
    > /dev/null 2> "$WORK/copy5.err"; then
  fail "copy with the wrong token for the target succeeded"
fi
grep -q "UNAUTHENTICATED: unknown token" "$WORK/copy5.err" || fail "copy without the target's token: $(cat "$WORK/copy5.err")"
RAWFEAT_TOKEN=wrong "$RAWFEAT" copy --from "$SRC" --to "$DST3" --definitions \
  --to-token-file "$WORK/admin.token" > "$WORK/copy6.txt" 2>/dev/null \
  || fail "copy with --to-token-file failed"
grep -q "copied $total events ($total new on the target" "$WORK/copy6.txt" || fail "token copy: $(cat "$WORK/copy6.txt")"
RAWFEAT_TOKEN=wrong RAWFEAT_FROM_TOKEN=copy-admin "$RAWFEAT" copy --from "$DST3" --to "$DST2" \
  > "$WORK/copy7.txt" 2>/dev/null || fail "copy with RAWFEAT_FROM_TOKEN failed"
grep -q "(0 new on the target, $total already there)" "$WORK/copy7.txt" || fail "copy out of the token server: $(cat "$WORK/copy7.txt")"
grep -q "audit: principal=ops .* method=Ingest object=stream:orders outcome=OK" "$WORK/server-d.log" \
  || fail "no audit line for the copy's ingest"
# SIGHUP re-reads the auth file: a new reader is let in, and a broken file
# keeps the principals in force (reported by status).
printf 'reader-token\n' > "$WORK/reader.token"
printf 'principals { name: "analyst" role: "reader" token_sha256: "%s" }\n' \
  "$(printf %s reader-token | sha256sum | cut -d' ' -f1)" >> "$WORK/auth.textproto"
"$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" status > /dev/null 2>&1 \
  && fail "an unknown token was let in before the reload"
kill -HUP "${PIDS[-1]}"
for _ in $(seq 1 200); do
  "$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" status > /dev/null 2>&1 && break
  sleep 0.05
done
"$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" status > /dev/null \
  || fail "SIGHUP did not let the new reader in"
if "$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" ingest --stream orders "$IN" \
    > /dev/null 2> "$WORK/reader-ingest.err"; then
  fail "a reader ingested"
fi
grep -q "PERMISSION_DENIED: principal 'analyst' may not ingest into stream 'orders'" "$WORK/reader-ingest.err" \
  || fail "reader ingest: $(cat "$WORK/reader-ingest.err")"
printf 'principals { name: ' > "$WORK/auth.textproto"
kill -HUP "${PIDS[-1]}"
for _ in $(seq 1 200); do
  "$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" status 2>/dev/null \
    | grep -q "^auth .*kept the previous principals" && break
  sleep 0.05
done
"$RAWFEAT" --server "$DST3" --token-file "$WORK/reader.token" status | grep -q "^auth .*does not parse" \
  || fail "a broken auth file is not reported by status"
grep -q "reader-token\|copy-admin" "$WORK/server-d.log" && fail "a token reached the log"

# diff: identical versions exit 0; a changed window is reported with the
# right counts and exit 1; errors exit 2.
sed -e 's/version: 1/version: 2/' \
    -e 's/name: "orders_7d"         aggregation: "count"          window: "7d"/name: "orders_7d" aggregation: "count" window: "3d"/' \
    "$SCHEMAS/user_orders.textproto" > "$WORK/user_orders_v2.textproto"
printf 'views { name: "user_orders" version: 3 stream: "orders" features { name: "orders_7d" aggregation: "count" window: "7d" } features { name: "extra" aggregation: "count" window: "1d" } }\n' \
  > "$WORK/user_orders_v3.textproto"
"${CLI[@]}" apply "$WORK/user_orders_v2.textproto" > /dev/null
"${CLI[@]}" apply "$WORK/user_orders_v3.textproto" > /dev/null
"${CLI[@]}" diff --view user_orders --versions 1,1 --as-of "$T" > "$WORK/diff11.txt" \
  || fail "diff of a version with itself: exit $? $(cat "$WORK/diff11.txt")"
grep -q "^identical" "$WORK/diff11.txt" || fail "diff 1,1: $(cat "$WORK/diff11.txt")"
set +e
"${CLI[@]}" diff --view user_orders --versions 1,2 --as-of "$T" --out "$WORK/diff12.txt"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "diff 1,2 exit $rc: $(cat "$WORK/diff12.txt")"
entities=$(awk -F, 'NR>1 && $3<"2026-11-20" {print $2}' "$WORK/src.csv" | sort -u | wc -l)
changed=$(awk -F, 'NR>1 && $3>="2026-11-13" && $3<"2026-11-17" {print $2}' "$WORK/src.csv" | sort -u | wc -l)
awk -v n="$entities" -v d="$changed" '$1=="orders_7d" && $2==n && $3==d {ok=1} END {exit !ok}' "$WORK/diff12.txt" \
  || fail "diff 1,2 orders_7d (want $entities compared, $changed differing): $(cat "$WORK/diff12.txt")"
awk '$1=="spend_7d" && $3==0 {ok=1} END {exit !ok}' "$WORK/diff12.txt" || fail "diff 1,2 spend_7d: $(cat "$WORK/diff12.txt")"
set +e
"${CLI[@]}" diff --view user_orders --versions 1,3 --as-of "$T" > "$WORK/diff13.txt"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "diff 1,3 exit $rc"
grep -q "^only in v3: extra" "$WORK/diff13.txt" || fail "diff 1,3 features: $(cat "$WORK/diff13.txt")"
grep -q "^only in v1: spend_7d" "$WORK/diff13.txt" || fail "diff 1,3 features: $(cat "$WORK/diff13.txt")"
set +e
"${CLI[@]}" diff --view user_orders --versions 1,9 --as-of "$T" > /dev/null 2> "$WORK/diff19.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "diff with an unknown version exit $rc"

# backfill: local midnights across the New York DST change (EDT -> EST on
# 2026-11-01), Seoul (no DST); resumable after a kill, a re-run is a no-op,
# all files at the watermark pinned when it started.
BF="$WORK/bf"
"${CLI[@]}" backfill --view user_orders --version 1 --from 2026-10-31 --to 2026-11-03 \
  --tz America/New_York --out "$BF" > "$WORK/bf1.txt" 2>/dev/null
grep -q "4 files (4 written, 0 already complete)" "$WORK/bf1.txt" || fail "backfill: $(cat "$WORK/bf1.txt")"
for stamp in 20261031T040000Z 20261101T040000Z 20261102T050000Z 20261103T050000Z; do
  [ -s "$BF/user_orders-v1-$stamp.csv" ] || fail "backfill file for $stamp missing: $(ls "$BF")"
done
grep -q '"as_of": "2026-11-02T05:00:00Z"' "$BF/user_orders-v1-20261102T050000Z.csv.meta.json" \
  || fail "backfill meta: $(cat "$BF/user_orders-v1-20261102T050000Z.csv.meta.json")"
cp -r "$BF" "$WORK/bf-ref"
# A killed run: two files missing, one half-written; late events since.
rm "$BF/user_orders-v1-20261101T040000Z.csv" "$BF/user_orders-v1-20261103T050000Z.csv.meta.json"
echo "garbage" > "$BF/user_orders-v1-20261101T040000Z.csv.partial"
printf 'event_id,user_id,order_time,amount,quantity,category\nlate2,u7,2026-10-30T12:00:00Z,5,1,late\n' > "$WORK/late2.csv"
"${CLI[@]}" ingest --stream orders "$WORK/late2.csv" > /dev/null
"${CLI[@]}" backfill --view user_orders --version 1 --from 2026-10-31 --to 2026-11-03 \
  --tz America/New_York --out "$BF" > "$WORK/bf2.txt" 2>/dev/null
grep -q "4 files (2 written, 2 already complete)" "$WORK/bf2.txt" || fail "resumed backfill: $(cat "$WORK/bf2.txt")"
diff -r "$BF" "$WORK/bf-ref" > /dev/null || fail "resumed backfill is not byte-identical: $(diff -rq "$BF" "$WORK/bf-ref")"
"${CLI[@]}" backfill --view user_orders --version 1 --from 2026-10-31 --to 2026-11-03 \
  --tz America/New_York --out "$BF" > "$WORK/bf3.txt" 2>/dev/null
grep -q "4 files (0 written, 4 already complete)" "$WORK/bf3.txt" || fail "re-run backfill: $(cat "$WORK/bf3.txt")"
# One Snapshot per as-of time gives the same files as the shared pass.
BFW=$(sed -n 's/.*"watermark": \([0-9]*\).*/\1/p' "$BF/backfill.json")
"${CLI[@]}" backfill --view user_orders --version 1 --from 2026-10-31 --to 2026-11-03 \
  --tz America/New_York --watermark "$BFW" --separate-passes --out "$WORK/bf-sep" > /dev/null 2>&1
diff -r "$WORK/bf-sep" "$WORK/bf-ref" > /dev/null || fail "separate passes differ: $(diff -rq "$WORK/bf-sep" "$WORK/bf-ref")"
if "${CLI[@]}" backfill --view user_orders --version 1 --from 2026-10-30 --to 2026-11-03 \
  --tz America/New_York --out "$BF" 2> "$WORK/bf4.err" > /dev/null; then fail "backfill into a different backfill's dir"; fi
grep -q "holds a different backfill" "$WORK/bf4.err" || fail "backfill dir clash: $(cat "$WORK/bf4.err")"
"${CLI[@]}" backfill --view user_orders --version 1 --from 2026-11-10 --to 2026-11-11 --tz Asia/Seoul \
  --out "$WORK/bf-seoul" > /dev/null 2>&1
ls "$WORK/bf-seoul" | grep -q "^user_orders-v1-20261109T150000Z.csv$" || fail "Seoul midnight: $(ls "$WORK/bf-seoul")"
ls "$WORK/bf-seoul" | grep -q "^user_orders-v1-20261110T150000Z.csv$" || fail "Seoul midnight 2: $(ls "$WORK/bf-seoul")"
if "${CLI[@]}" backfill --view user_orders --from 2026-11-10 --to 2026-11-11 --tz Mars/Olympus \
  --out "$WORK/bf-x" 2> "$WORK/bf5.err"; then fail "unknown time zone accepted"; fi
grep -q "unknown time zone 'Mars/Olympus'" "$WORK/bf5.err" || fail "tz error: $(cat "$WORK/bf5.err")"

# A feature service: applied from a file, read with --key, equal to its
# view's answer; listed by status.
printf 'services { name: "svc" version: 1 parts { view: "user_orders" view_version: 1 key: "user_id" prefix: "u_" } }\n' \
  > "$WORK/svc.textproto"
"${CLI[@]}" apply "$WORK/svc.textproto" | grep -q "add service 'svc' version 1 (1 parts, 13 features)" \
  || fail "service apply"
"${CLI[@]}" get --service svc --key user_id=u5 --as-of 2026-12-01 --format csv > "$WORK/svc.csv"
"${CLI[@]}" get --view user_orders --version 1 --entity u5 --as-of 2026-12-01 --format csv > "$WORK/view.csv"
head -1 "$WORK/svc.csv" | grep -q "^entity,u_orders_1h,u_orders_7d," || fail "service header: $(head -1 "$WORK/svc.csv")"
[ "$(tail -1 "$WORK/svc.csv" | cut -d, -f2-)" = "$(tail -1 "$WORK/view.csv" | cut -d, -f2-)" ] \
  || fail "service row differs from the view's: $(tail -1 "$WORK/svc.csv") vs $(tail -1 "$WORK/view.csv")"
"${CLI[@]}" status | grep -Eq "^service +svc +v1, 1 parts, 13 features" || fail "status lists no service"
"${CLI[@]}" describe svc | grep -q "^part 1: view user_orders v1 by user_id, prefix u_$" \
  || fail "describe svc: $("${CLI[@]}" describe svc)"
"${CLI[@]}" describe user_orders --version 1 | grep -Eq "^spend_7d +DOUBLE +sum +amount +7d" \
  || fail "describe view: $("${CLI[@]}" describe user_orders --version 1)"
# A service snapshot equals its view's under the service's names; a
# backfill and a diff take a service too.
"${CLI[@]}" snapshot --service svc --as-of "$T" --out "$WORK/svc-snap.csv" 2>/dev/null
"${CLI[@]}" snapshot --view user_orders --version 1 --as-of "$T" \
  --watermark "$(sed -n 's/.*"watermark": \([0-9]*\).*/\1/p' "$WORK/svc-snap.csv.meta.json")" \
  --out "$WORK/view-snap.csv" 2>/dev/null
head -1 "$WORK/svc-snap.csv" | grep -q "^entity,u_orders_1h," || fail "service snapshot header"
[ "$(tail -n +2 "$WORK/svc-snap.csv")" = "$(tail -n +2 "$WORK/view-snap.csv")" ] \
  || fail "service snapshot differs from its view's"
grep -q '"service": "svc"' "$WORK/svc-snap.csv.meta.json" || fail "service snapshot meta"
/usr/bin/python3 -c '
import json, sys
cols = {c["name"]: c["type"] for c in json.load(open(sys.argv[1]))["columns"]}
assert cols["u_spend_7d"] == "DOUBLE" and cols["u_orders_1h"] == "INT64", cols
' "$WORK/svc-snap.csv.meta.json" || fail "service snapshot column types"
"${CLI[@]}" diff --service svc --versions 1,1 --as-of "$T" > "$WORK/svc-diff.txt" \
  || fail "service diff: $(cat "$WORK/svc-diff.txt")"
grep -q "^service svc v1 vs v1 as of" "$WORK/svc-diff.txt" || fail "service diff report"
"${CLI[@]}" backfill --service svc --from 2026-11-19 --to 2026-11-20 --out "$WORK/bf-svc" > /dev/null 2>&1 \
  || fail "service backfill"
[ -s "$WORK/bf-svc/svc-v1-20261120T000000Z.csv" ] || fail "service backfill files: $(ls "$WORK/bf-svc")"
# Two keys in one label row (the user as buyer and as seller): each part
# keyed by its own column, an empty cell nulls only its part.
printf 'services { name: "svc" version: 2 parts { view: "user_orders" view_version: 1 key: "user_id" prefix: "u_" features: "orders_7d" features: "spend_7d" } parts { view: "user_orders" view_version: 1 key: "seller_id" prefix: "s_" features: "spend_7d" } }\n' \
  > "$WORK/svc2.textproto"
"${CLI[@]}" apply "$WORK/svc2.textproto" > /dev/null || fail "service v2 apply"
{
  echo 'label_id,user_id,seller_id,ts'
  echo "k1,u5,u1,$T"
  echo "k2,u2,,$T"
  echo 'k3,,u5,2026-11-05T09:00:00+09:00'
  echo "k4,nobody,u2,$T"
} > "$WORK/labels2.csv"
"${CLI[@]}" join --service svc --labels "$WORK/labels2.csv" --time-column ts \
  --out "$WORK/svc-train.csv" 2>/dev/null || fail "service join"
SW=$(sed -n 's/.*"watermark": \([0-9]*\).*/\1/p' "$WORK/svc-train.csv.meta.json")
head -1 "$WORK/svc-train.csv" | grep -q "^label_id,user_id,seller_id,ts,u_orders_7d,u_spend_7d,s_spend_7d$" \
  || fail "service join header: $(head -1 "$WORK/svc-train.csv")"
grep -q '"key_columns": \[' "$WORK/svc-train.csv.meta.json" || fail "service join meta"
for key in user_id seller_id; do
  "${CLI[@]}" join --view user_orders --version 1 --labels "$WORK/labels2.csv" --time-column ts \
    --entity-column "$key" --watermark "$SW" --skip-invalid --out "$WORK/by-$key.csv" 2>/dev/null
done
col() {  # FILE LABEL_ID COLUMN: one cell (no quoted commas before it)
  awk -F, -v id="$2" -v name="$3" 'NR==1 {for (i = 1; i <= NF; i++) if ($i == name) c = i; next}
    $1 == id {print $c}' "$1"
}
for id in k1 k2 k3 k4; do
  for f in orders_7d spend_7d; do
    [ "$(col "$WORK/svc-train.csv" "$id" "u_$f")" = "$(col "$WORK/by-user_id.csv" "$id" "$f")" ] \
      || fail "service join $id u_$f: $(grep "^$id," "$WORK/svc-train.csv")"
  done
  [ "$(col "$WORK/svc-train.csv" "$id" s_spend_7d)" = "$(col "$WORK/by-seller_id.csv" "$id" spend_7d)" ] \
    || fail "service join $id s_spend_7d: $(grep "^$id," "$WORK/svc-train.csv")"
done
grep -q "^k2,u2,,$T,[0-9]*,[0-9.]*,$" "$WORK/svc-train.csv" || fail "no seller: $(grep '^k2,' "$WORK/svc-train.csv")"
grep -q "^k3,,u5,[^,]*,,,[0-9.]*$" "$WORK/svc-train.csv" || fail "no buyer: $(grep '^k3,' "$WORK/svc-train.csv")"
if "${CLI[@]}" snapshot --service svc --as-of "$T" --out "$WORK/x.csv" 2> "$WORK/svc-snap.err"; then
  fail "snapshot of a two-key service"
fi
grep -q "is keyed by 'user_id' but part 2 (view 'user_orders') by 'seller_id'" "$WORK/svc-snap.err" \
  || fail "two-key snapshot error: $(cat "$WORK/svc-snap.err")"
sed 's/seller_id/merchant/' "$WORK/labels2.csv" > "$WORK/labels3.csv"
if "${CLI[@]}" join --service svc --labels "$WORK/labels3.csv" --time-column ts --out "$WORK/x.csv" \
  2> "$WORK/svc-key.err"; then fail "service join without a key column"; fi
grep -q "no column 'seller_id' (part 2 of service 'svc' looks up view 'user_orders' by it)" "$WORK/svc-key.err" \
  || fail "missing key column error: $(cat "$WORK/svc-key.err")"

# Unknown server: one line, non-zero, saying what to do.
if "$RAWFEAT" --server 127.0.0.1:1 status 2> "$WORK/down.err"; then fail "status on a dead port"; fi
[ "$(wc -l < "$WORK/down.err")" -eq 1 ] || fail "down error is not one line"
grep -q "no rawfeatd at 127.0.0.1:1: connection refused (is it running?" "$WORK/down.err" \
  || fail "down error: $(cat "$WORK/down.err")"
# ingest retries its stream lookup too (--retries 1: one retry, then fails).
if "$RAWFEAT" --server 127.0.0.1:1 ingest --stream orders "$IN" --retries 1 2> "$WORK/down2.err"; then
  fail "ingest to a dead port"
fi
grep -q "no rawfeatd at 127.0.0.1:1" "$WORK/down2.err" || fail "ingest down: $(cat "$WORK/down2.err")"
# ... and so an ingest started before its server comes up goes through.
(sleep 1; exec "$RAWFEATD" --listen=127.0.0.1:0 --data_dir="$WORK/data-late" \
   --schemas="$SCHEMAS" --port_file="$WORK/port-late" 2>/dev/null) &
PIDS+=($!)
for _ in $(seq 1 200); do [ -s "$WORK/port-late" ] && break; sleep 0.05; done
LATE="127.0.0.1:$(cat "$WORK/port-late")"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
(sleep 1; exec "$RAWFEATD" --listen="$LATE" --data_dir="$WORK/data-late" \
   --port_file="$WORK/port-late2" 2>/dev/null) &
PIDS+=($!)
"$RAWFEAT" --server "$LATE" ingest --stream orders "$IN" --retries 20 > "$WORK/late.txt" \
  || fail "ingest before its server came up"
grep -q "1000 rows read, 1000 accepted" "$WORK/late.txt" || fail "late ingest: $(cat "$WORK/late.txt")"

# Global flags go before or after the command; a mistyped command is named
# with the closest one; --help lists the global flags.
"$RAWFEAT" status --server "${CLI[2]}" > /dev/null || fail "--server after the command"
if "$RAWFEAT" stauts 2> "$WORK/typo.err"; then fail "a mistyped command ran"; fi
grep -q "unknown command 'stauts' (did you mean 'status'?)" "$WORK/typo.err" || fail "typo: $(cat "$WORK/typo.err")"
"$RAWFEAT" snapshot --help | grep -q -- "--server HOST:PORT" || fail "snapshot --help does not list --server"

# One time parser: a date is midnight UTC everywhere; one error text.
"${CLI[@]}" get --view user_orders --entity u5 --as-of 2026-12-01 --format csv > "$WORK/date.csv"
"${CLI[@]}" get --view user_orders --entity u5 --as-of 2026-12-01T00:00:00Z --format csv > "$WORK/rfc.csv"
cmp -s "$WORK/date.csv" "$WORK/rfc.csv" || fail "a date is not midnight UTC"
"${CLI[@]}" get --view user_orders --entity "u5, nobody" --format csv > "$WORK/spaced.csv"
"${CLI[@]}" get --view user_orders --entity u5,nobody --format csv > "$WORK/unspaced.csv"
cmp -s "$WORK/spaced.csv" "$WORK/unspaced.csv" || fail "--entity 'u5, nobody' is not u5,nobody"
"${CLI[@]}" get --view user_orders --entity u5 --as-of 2026-12-32 2> "$WORK/t1.err" && fail "bad date accepted"
"${CLI[@]}" snapshot --view user_orders --as-of 2026-12-32 --out "$WORK/x.csv" 2> "$WORK/t2.err" && fail "bad date accepted"
[ "$(cat "$WORK/t1.err")" = "$(cat "$WORK/t2.err")" ] || fail "time errors differ: $(cat "$WORK/t1.err" "$WORK/t2.err")"
grep -q "a date (2026-11-24, midnight UTC)" "$WORK/t1.err" || fail "time error: $(cat "$WORK/t1.err")"

# Input files: a UTF-8 BOM is skipped; an unknown extension is refused with
# the supported ones; a JSON syntax error names line, column and reason.
printf '\xef\xbb\xbfevent_id,user_id,order_time,amount,quantity,category\nbom1,u1,2026-11-01T00:00:00Z,1.5,1,a\n' > "$WORK/bom.csv"
"${CLI[@]}" ingest --stream orders "$WORK/bom.csv" | grep -q "1 accepted" || fail "BOM CSV"
cp "$WORK/bom.csv" "$WORK/bom.txt"
"${CLI[@]}" ingest --stream orders "$WORK/bom.txt" 2> "$WORK/txt.err" && fail ".txt accepted"
grep -q "cannot tell the format from the extension '.txt': supported are .csv" "$WORK/txt.err" || fail "txt: $(cat "$WORK/txt.err")"
printf '{"event_id":"j1","user_id":"u1","order_time":"2026-11-01T00:00:00Z","amount":1,"quantity":1,"category":"a"}\n{"event_id": "j2", user_id: 1}\n' > "$WORK/bad.jsonl"
"${CLI[@]}" ingest --stream orders "$WORK/bad.jsonl" 2> "$WORK/json.err" && fail "bad JSON accepted"
grep -q "line 2, column 20: invalid JSON: syntax error" "$WORK/json.err" || fail "json error: $(cat "$WORK/json.err")"
"${CLI[@]}" snapshot --view user_orders --as-of 2026-12-01 --out "$WORK/s.parquet" 2> "$WORK/pq.err" \
  && fail "snapshot to .parquet"
grep -q "s.parquet: cannot tell the format from the extension '.parquet'" "$WORK/pq.err" || fail "parquet: $(cat "$WORK/pq.err")"
[ ! -e "$WORK/s.parquet" ] && [ ! -e "$WORK/s.parquet.partial" ] || fail "a .parquet file was written"

# Local files: the OS's reason, no server status code, non-zero exit.
"${CLI[@]}" snapshot --view user_orders --as-of 2026-12-01 --out "$WORK/no/such/dir/s.csv" 2> "$WORK/w.err" \
  && fail "snapshot into a missing directory"
grep -q "^rawfeat: cannot create $WORK/no/such/dir/s.csv: No such file or directory$" "$WORK/w.err" \
  || fail "write error: $(cat "$WORK/w.err")"
"${CLI[@]}" replay --stream orders --out "$WORK/no/such/r.csv" 2> "$WORK/w2.err" && fail "replay into a missing directory"
grep -q "^rawfeat: cannot create $WORK/no/such/r.csv: No such file or directory$" "$WORK/w2.err" \
  || fail "replay write error: $(cat "$WORK/w2.err")"
"${CLI[@]}" join --view user_orders --labels "$LABELS" --time-column ts --out "$WORK/no/such/t.csv" 2> "$WORK/w3.err" \
  && fail "join into a missing directory"
grep -q "^rawfeat: cannot create $WORK/no/such/t.csv: No such file or directory$" "$WORK/w3.err" \
  || fail "join write error: $(cat "$WORK/w3.err")"
"${CLI[@]}" ingest --stream orders "$WORK/nope.csv" 2> "$WORK/r.err" && fail "missing input"
grep -q "nope.csv: cannot open: No such file or directory" "$WORK/r.err" || fail "read error: $(cat "$WORK/r.err")"

# --skip-invalid with every row refused: the server's watermark, and the
# rejected rows shown when there is no reject file.
printf 'user_id,order_time,amount,quantity,category\nu1,2026-11-01T00:00:00Z,x,1,a\nu2,2026-11-01T00:00:00Z,y,1,b\n' > "$WORK/allbad.csv"
"${CLI[@]}" ingest --stream orders "$WORK/allbad.csv" --skip-invalid > "$WORK/allbad.txt" 2> "$WORK/allbad.err"
WM=$("${CLI[@]}" status | awk '$1=="watermark" {print $2}')
grep -q "0 accepted, 0 duplicates, 2 rejected; watermark $WM$" "$WORK/allbad.txt" || fail "all rejected: $(cat "$WORK/allbad.txt") (server at $WM)"
grep -q "^rejected line 3: column 'amount'" "$WORK/allbad.err" || fail "rejected rows not shown: $(cat "$WORK/allbad.err")"
# Backup of the live server, restore into a new data dir: the same replay.
"${CLI[@]}" backup --out "$WORK/backups" > "$WORK/backup.txt" || fail "backup: $(cat "$WORK/backup.txt")"
BACKUP_WM=$(sed -n 's/.*: watermark \([0-9]*\),.*/\1/p' "$WORK/backup.txt")
[ "$BACKUP_WM" = "$WM" ] || fail "backup watermark '$BACKUP_WM', server at $WM: $(cat "$WORK/backup.txt")"
grep -q "^restore: rawfeatd --restore_from $WORK/backups/backup-$WM --data_dir NEW_DIR" "$WORK/backup.txt" \
  || fail "backup hint: $(cat "$WORK/backup.txt")"
"${CLI[@]}" backup --out "$WORK/orders.csv" 2> "$WORK/backup.err" && fail "backup over a file"
"$RAWFEATD" --listen=127.0.0.1:0 --data_dir="$WORK/restored" --restore_from="$WORK/backups" \
  --port_file="$WORK/port2" 2>"$WORK/server2.log" &
PID2=$!
for _ in $(seq 1 200); do [ -s "$WORK/port2" ] && break; sleep 0.05; done
[ -s "$WORK/port2" ] || fail "restored server did not start: $(cat "$WORK/server2.log")"
RESTORED=("$RAWFEAT" --server "127.0.0.1:$(cat "$WORK/port2")")
"${RESTORED[@]}" replay --stream orders --out "$WORK/restored.csv" 2>/dev/null
"${CLI[@]}" replay --stream orders --watermark "$WM" --out "$WORK/source.csv" 2>/dev/null
cmp -s "$WORK/source.csv" "$WORK/restored.csv" || fail "restored replay differs from the source's at $WM"
kill "$PID2"; wait "$PID2" || true; PID2=""

# Erasure: every event of u5 goes; the erasure log names a hash, not u5.
N_U5=$("${CLI[@]}" replay --stream orders --entity u5 --format jsonl --out - 2>/dev/null | wc -l)
[ "$N_U5" -gt 0 ] || fail "u5 has no events to erase"
"${CLI[@]}" erase --stream orders --entity u5 > "$WORK/erase.txt" || fail "erase: $(cat "$WORK/erase.txt")"
U5_SHA=$(printf u5 | sha256sum | cut -d' ' -f1)
grep -q "^erased $N_U5 events of one entity of stream orders (entity sha256 $U5_SHA); watermark " "$WORK/erase.txt" \
  || fail "erase output: $(cat "$WORK/erase.txt") (u5 had $N_U5 events)"
[ "$("${CLI[@]}" replay --stream orders --entity u5 --format jsonl --out - 2>/dev/null | wc -l)" = 0 ] \
  || fail "u5 still replays after the erasure"
"${CLI[@]}" replay --stream orders --format jsonl --out - 2>/dev/null | grep -q '"u5"' && fail "u5 in the stream's replay"
"${CLI[@]}" erase --stream orders --entity u5 | grep -q "^erased 0 events" || fail "a second erasure is not a no-op"
"${CLI[@]}" erasures > "$WORK/erasures.txt"
[ "$(grep -c "orders .*$U5_SHA$" "$WORK/erasures.txt")" = 2 ] || fail "erasure log: $(cat "$WORK/erasures.txt")"
grep -qw u5 "$WORK/erasures.txt" && fail "the erasure log names the entity"
# A batch that fails mid-file stops the ingest there, naming its lines; the
# batches before it are stored, the ones after it never sent (one batch is
# sent while the next is read, in file order).
MID="$WORK/mid.csv"
{
  echo "event_id,user_id,order_time,amount,quantity,category"
  for i in 1 2 3 4; do echo "m$i,mid,2026-11-02T00:00:0${i}Z,1,1,a"; done
  echo "o1,u1,2026-11-02T00:00:00Z,9,1,not-o1"  # another content under o1
  for i in 6 7 8 9 10; do echo "m$i,mid,2026-11-02T00:00:0${i}Z,1,1,a"; done
} | sed 's/:010Z/:10Z/' > "$MID"
if "${CLI[@]}" ingest --stream orders "$MID" --batch-size 2 > /dev/null 2> "$WORK/mid.err"; then
  fail "a conflicting batch was accepted"
fi
grep -q "batch of lines 6-7" "$WORK/mid.err" || fail "mid-file failure: $(cat "$WORK/mid.err")"
[ "$("${CLI[@]}" replay --stream orders --entity mid --format jsonl --out - 2>/dev/null | wc -l)" = 4 ] \
  || fail "the batches before the failing one are not all stored, or later ones were"
# Past its first batch a file is streamed, 64 batches per call: with
# --skip-invalid the rows the server refuses (conflicts, found only when
# written) are named by their lines in whichever call they went, and the
# rows are stored in file order.
MANY="$WORK/many.csv"
{
  echo "event_id,user_id,order_time,amount,quantity,category"
  for i in $(seq 1 200); do
    if [ "$i" = 60 ] || [ "$i" = 170 ]; then
      echo "o1,u1,2026-11-02T00:00:00Z,9,1,not-o1"
    else
      echo "k$i,many,2026-11-04T00:00:00.$(printf %06d "$((1000 - i))")Z,$i,1,a"
    fi
  done
} > "$MANY"
"${CLI[@]}" ingest --stream orders "$MANY" --batch-size 2 --skip-invalid \
  --reject-file "$WORK/many.rej" > "$WORK/many.txt" || fail "streamed ingest"
grep -q "200 rows read, 198 accepted, 0 duplicates, 2 rejected" "$WORK/many.txt" \
  || fail "streamed ingest: $(cat "$WORK/many.txt")"
[ "$(cut -d: -f1 "$WORK/many.rej" | tr '\n' ' ')" = "line 61 line 171 " ] \
  || fail "streamed rejects: $(cat "$WORK/many.rej")"
"${CLI[@]}" replay --stream orders --watermark 0 --format csv --out - 2>/dev/null \
  | grep ',many,' | cut -d, -f1 > "$WORK/many_out.txt"
grep ',many,' "$MANY" | cut -d, -f1 > "$WORK/many_in.txt"
cmp -s "$WORK/many_in.txt" "$WORK/many_out.txt" || fail "streamed rows not stored once each in file order"
# Several batches in flight: every row is stored once, in some order.
PAR="$WORK/par.csv"
{
  echo "event_id,user_id,order_time,amount,quantity,category"
  for i in $(seq 1 300); do echo "p$i,par,2026-11-03T00:00:00.$(printf %06d "$i")Z,$i,1,a"; done
} > "$PAR"
"${CLI[@]}" ingest --stream orders "$PAR" --batch-size 16 --in-flight 4 > "$WORK/par.txt" \
  || fail "ingest with 4 batches in flight"
grep -q "300 rows read, 300 accepted, 0 duplicates" "$WORK/par.txt" || fail "in flight: $(cat "$WORK/par.txt")"
"${CLI[@]}" replay --stream orders --entity par --out "$WORK/par_replay.csv" 2>/dev/null
cut -d, -f1 "$WORK/par_replay.csv" | sort > "$WORK/par_ids_out.txt"
cut -d, -f1 "$PAR" | sort > "$WORK/par_ids_in.txt"
cmp -s "$WORK/par_ids_in.txt" "$WORK/par_ids_out.txt" || fail "rows in flight stored other than once each"
"${CLI[@]}" ingest --stream orders "$PAR" --in-flight 0 2> "$WORK/par0.err" && fail "--in-flight 0 accepted"
grep -q "in-flight must be between 1 and 64" "$WORK/par0.err" || fail "in-flight 0: $(cat "$WORK/par0.err")"
echo "cli e2e: ok"
