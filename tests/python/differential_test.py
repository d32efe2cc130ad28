#!/usr/bin/python3
"""Randomized differential test of GetFeatures, Snapshot and JoinFeatures
(of views and of feature services) against a plain-Python oracle.

Starts a real rawfeatd, ingests random events through the real gRPC API, and
compares every feature value with an independent reference written here in
plain Python from the written semantics, never from the server's formulas:
math.fsum for sums, and for stddev the exact sample variance as a
fractions.Fraction, rounded once by float() and then math.sqrt.

A second part feeds adversarial numbers (large offsets with tiny spreads,
epoch seconds and microseconds, 1e300 next to 1e-300, subnormals, int64
near +-2^63, all-equal values, -0.0) through every path: GetFeatures before
and after tiles exist, after a restart, Snapshot, and JoinFeatures with
sliding windows.

Usage: differential_test.py --rawfeatd PATH --protos DIR [--seed N]
"""

import argparse
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

HOUR = 3600 * 10**6
DAY = 24 * HOUR
T0 = 1795478400 * 10**6  # 2026-11-24T00:00:00Z
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

FIELDS = {"i": "INT64", "d": "DOUBLE", "s": "STRING", "b": "BOOL"}
WINDOWS = {"30m": 30 * 60 * 10**6, "1h": HOUR, "1d": DAY, "7d": 7 * DAY,
           "lifetime": None}


def generate_protos(protos_dir, out_dir):
    subprocess.run(
        ["protoc", "-I", protos_dir, "--python_out", out_dir,
         "--grpc_python_out", out_dir,
         "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
         "rawfeat/v1/rawfeat.proto"],
        check=True)
    for d in ("rawfeat", "rawfeat/v1"):
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


def features_under_test():
    """(name, aggregation, field, window, k, filter) covering every case."""
    feats = []
    aggs = {
        "count": [""] + list(FIELDS),
        "sum": ["i", "d"], "avg": ["i", "d"], "stddev": ["i", "d"],
        "min": list(FIELDS), "max": list(FIELDS),
        "first": list(FIELDS), "last": list(FIELDS),
        "last_k": list(FIELDS), "count_distinct": list(FIELDS),
    }
    for agg, fields in aggs.items():
        for field in fields:
            for window in WINDOWS:
                feats.append((f"{agg}_{field or 'all'}_{window}", agg, field,
                              window, 3 if agg == "last_k" else 0, None))
    filters = [
        ("s", "=", ["a"]), ("s", "!=", ["a"]), ("s", "<", ["b"]),
        ("s", ">=", ["é"]), ("i", ">", [0]), ("i", "<=", [-5]),
        ("d", ">=", [0.5]), ("d", "<", [3]), ("b", "=", [True]),
        ("s", "in", ["a", "c", "é"]), ("i", "in", [1, 2, 3]),
    ]
    for n, (field, op, values) in enumerate(filters):
        feats.append((f"filtered_count_{n}", "count", "", "1d", 0,
                      (field, op, values)))
        feats.append((f"filtered_sum_{n}", "sum", "d", "7d", 0,
                      (field, op, values)))
        feats.append((f"filtered_last_{n}", "last", "s", "lifetime", 0,
                      (field, op, values)))
    return feats


def add_event(req, ev):
    """Appends random event `ev` to IngestRequest `req`."""
    pe = req.events.add(event_id=ev["id"], entity=ev["entity"])
    set_time(pe.event_time, ev["t"])
    for fname, val in ev["fields"].items():
        kind = {"INT64": "int64_value", "DOUBLE": "double_value",
                "STRING": "string_value", "BOOL": "bool_value"}[FIELDS[fname]]
        setattr(pe.fields[fname], kind, val)


def random_event(rng, n, entities):
    fields = {}
    if rng.random() < 0.85:
        fields["i"] = rng.choice([rng.randint(-10, 10),
                                  rng.randint(-2**40, 2**40)])
    if rng.random() < 0.85:
        kind = rng.random()
        if kind < 0.15:
            fields["d"] = rng.choice([1.0, -1.0]) * 2.0**100
        elif kind < 0.25:
            fields["d"] = rng.choice([1e-300, 5e-324, 1e150, 0.1, 0.2, 0.3])
        else:
            fields["d"] = rng.randint(-1000, 1000) / rng.choice([1, 3, 7, 10])
    if rng.random() < 0.85:
        fields["s"] = rng.choice(["a", "b", "c", "ab", "", "é", "z", "B"])
    if rng.random() < 0.7:
        fields["b"] = rng.random() < 0.5
    # Coarse times so that ties and exact boundary hits happen.
    t = T0 - rng.randint(0, 10 * 48) * (HOUR // 2) - rng.choice([0, 0, 0, 1])
    return {"id": f"ev{n}" if rng.random() < 0.8 else "",
            "entity": rng.choice(entities), "t": t, "fields": fields}


# ------------------------------------------------------------ the oracle

def type_key(value):
    """Ordering key: strings by UTF-8 bytes, False < True."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def filter_passes(flt, ev):
    if flt is None:
        return True
    field, op, lits = flt
    if field not in ev["fields"]:
        return False
    v = ev["fields"][field]
    if FIELDS[field] == "DOUBLE":
        lits = [float(x) for x in lits]
    v, lits = type_key(v), [type_key(x) for x in lits]
    if op == "in":
        return any(v == x for x in lits)
    x = lits[0]
    return {"=": v == x, "!=": v != x, "<": v < x, "<=": v <= x,
            ">": v > x, ">=": v >= x}[op]


def oracle(feature, events, as_of):
    """Expected value: ("ok", python value) or ("OUT_OF_RANGE", None)."""
    name, agg, field, window, k, flt = feature
    w = WINDOWS[window]
    sel = [e for e in events
           if e["t"] < as_of and (w is None or e["t"] >= as_of - w)
           and filter_passes(flt, e) and (not field or field in e["fields"])]
    sel.sort(key=lambda e: (e["t"], e["seq"]))
    vals = [e["fields"][field] for e in sel] if field else []
    ftype = FIELDS.get(field)
    if agg == "count":
        return "ok", len(sel)
    if agg == "sum":
        if ftype == "INT64":
            s = sum(vals)
            if s < INT64_MIN or s > INT64_MAX:
                return "OUT_OF_RANGE", None
            return "ok", s
        return rounded_sum(vals)
    if not sel:
        return "ok", 0 if agg == "count_distinct" else None
    if agg == "avg":
        # The exact sum rounded once to double, divided by the count.
        if ftype == "INT64":
            return "ok", float(sum(vals)) / len(vals)
        status, s = rounded_sum(vals)
        return (status, s / len(vals) if status == "ok" else None)
    if agg in ("min", "max"):
        best, best_key = None, None
        for v in vals:  # in (t, seq) order: ties keep the earliest
            key = type_key(v)
            if best_key is None or (key < best_key if agg == "min"
                                    else key > best_key):
                best, best_key = v, key
        return "ok", best
    if agg == "first":
        return "ok", vals[0]
    if agg == "last":
        return "ok", vals[-1]
    if agg == "last_k":
        return "ok", list(reversed(vals))[:k]
    if agg == "count_distinct":
        return "ok", len(set(vals))
    if agg == "stddev":
        return exact_stddev(vals)
    raise ValueError(agg)


def rounded_sum(vals):
    """The correctly rounded sum of doubles, or OUT_OF_RANGE past DBL_MAX."""
    try:
        s = math.fsum(vals)
    except OverflowError:
        return "OUT_OF_RANGE", None
    return ("OUT_OF_RANGE", None) if math.isinf(s) else ("ok", s)


def exact_stddev(vals):
    """Sample stddev by the definition: the exact variance (INT64 values as
    exact integers, doubles as their exact binary values) as a Fraction,
    rounded once to the nearest double by float(), then IEEE sqrt."""
    n = len(vals)
    if n < 2:
        return "ok", None
    xs = [Fraction(v) for v in vals]
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    try:
        return "ok", math.sqrt(float(var))
    except OverflowError:
        return "OUT_OF_RANGE", None


def from_proto(v):
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "list_value":
        return [from_proto(x) for x in v.list_value.values]
    return getattr(v, kind)


def same(want, got, ftype, agg):
    if isinstance(want, list):
        return (isinstance(got, list) and len(want) == len(got)
                and all(same(a, b, ftype, agg) for a, b in zip(want, got)))
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, float) or (ftype == "DOUBLE" and agg not in (
            "count", "count_distinct")) or agg in ("avg", "stddev"):
        # Bit-identical doubles (0.0 and -0.0 are not distinguished by sums).
        return isinstance(got, float) and (
            struct.pack("<d", float(want)) == struct.pack("<d", got)
            or (want == 0 and got == 0))
    return type(want) is type(got) and want == got


def columns_to_values(pb, chunk):
    """A ColumnChunk decoded by the layout rawfeat.proto documents (not by
    the client's code): {row_index: [pb.Value per column]}."""
    m = len(chunk.row_index) // 8
    index = struct.unpack(f"<{m}Q", chunk.row_index)
    columns = [column_values(pb, c, m) for c in chunk.columns]
    return {index[i]: [c[i] for c in columns] for i in range(m)}


def column_values(pb, col, m):
    out = [pb.Value() for _ in range(m)]
    assert len(col.present) == m, (len(col.present), m)
    if col.kind == pb.COLUMN_INT64:
        xs = struct.unpack(f"<{m}q", col.fixed)
    elif col.kind == pb.COLUMN_DOUBLE:
        xs = struct.unpack(f"<{m}d", col.fixed)
    elif col.kind == pb.COLUMN_BOOL:
        xs = [b != 0 for b in col.fixed]
    elif col.kind == pb.COLUMN_STRING:
        xs = list(col.strings)
    elif col.kind == pb.COLUMN_LIST:
        lengths = struct.unpack(f"<{m}I", col.list_lengths)
        items = column_values(pb, col.items, sum(lengths))
        xs, at = [], 0
        for n in lengths:
            xs.append(items[at:at + n])
            at += n
    else:
        xs = [None] * m
    assert len(xs) == m
    field = {pb.COLUMN_INT64: "int64_value", pb.COLUMN_DOUBLE: "double_value",
             pb.COLUMN_BOOL: "bool_value", pb.COLUMN_STRING: "string_value"}
    for i in range(m):
        if not col.present[i]:
            continue
        if col.kind == pb.COLUMN_LIST:
            out[i].list_value.values.extend(xs[i])
        else:
            setattr(out[i], field[col.kind], xs[i])
    return out


# ------------------------------------------------------------ the driver

def set_time(ts, micros):
    ts.seconds = micros // 10**6
    ts.nanos = (micros % 10**6) * 1000


def get_or_out_of_range(grpc, stub, req, want_status, counts, where):
    """GetFeatures that must fail with OUT_OF_RANGE exactly when the oracle
    says some feature overflows; returns the response, or None when it
    (correctly) failed."""
    want_oor = any(st == "OUT_OF_RANGE" for st, _ in want_status)
    return rows_or_out_of_range(
        grpc, lambda: stub.GetFeatures(req, timeout=30), want_oor, counts,
        where)


def rows_or_out_of_range(grpc, call, want_oor, counts, where):
    """What `call` returns, which must fail with OUT_OF_RANGE exactly when
    the oracle says some value overflows; None when it (correctly) failed
    or (wrongly) answered."""
    try:
        rows = call()
    except grpc.RpcError as err:
        if want_oor and err.code() == grpc.StatusCode.OUT_OF_RANGE:
            counts["checked"] += 1
            return None
        raise
    if want_oor:
        counts["failures"] += 1
        print(f"MISMATCH {where}: want OUT_OF_RANGE, got an answer")
        return None
    return rows


# Adversarial numeric families: name -> (INT64 value, DOUBLE value) maker.
# Families that overflow (a variance above DBL_MAX, an int64 sum past
# +-2^63) live on their own stream so the others' snapshots and joins
# still answer.
NUMERIC_FAMILIES = {
    "num": {
        "e9": lambda r, k: (10**9 + r.randint(0, 3), 1e9 + r.randint(0, 3)),
        "e15": lambda r, k: (10**15 + 2 * r.randint(0, 4) + 1,
                             1e15 + 2 * r.randint(0, 4) + 1),
        "epoch_s": lambda r, k: (1764547200 + r.randint(0, 9),
                                 1764547200 + 0.5 * r.randint(0, 9)),
        "epoch_us": lambda r, k: (1764547200 * 10**6 + r.randint(0, 99),
                                  1764547200e6 + r.randint(0, 99)),
        "tenths": lambda r, k: (r.randint(-3, 3), r.choice([0.1, 0.2, 0.3])),
        "equal": lambda r, k: (-42, 7.25),
        "zeros": lambda r, k: (0, r.choice([0.0, -0.0])),
        "subnormal": lambda r, k: (r.randint(-1, 1),
                                   r.choice([5e-324, 1e-323, -5e-324,
                                             2.5e-308])),
        "tiny_spread": lambda r, k: (2**40 + r.randint(0, 2),
                                     1e-160 * r.choice([1, 3])),
    },
    "numx": {
        "i64_mixed": lambda r, k: (r.choice([INT64_MAX, INT64_MIN,
                                             -INT64_MAX, 1]),
                                   r.choice([1e150, -1e150, 1.0])),
        "huge": lambda r, k: (r.randint(0, 5),
                              r.choice([1e300, -1e300, 1e-300, -1e-300])),
        "i64max": lambda r, k: (INT64_MAX - r.randint(0, 3), 2.0**1000),
        "i64min": lambda r, k: (INT64_MIN + r.randint(0, 3), -(2.0**1000)),
    },
}
NUMERIC_AGGS = ("sum", "avg", "stddev", "min", "max")
NUMERIC_WINDOWS = ("1h", "1d", "lifetime")


def adversarial_numbers(args, rng, pb, grpc, stub, server, start_server,
                        compare, counts):
    """Adversarial values through GetFeatures (scan, tiles, after a
    restart), Snapshot and JoinFeatures; every value against the oracle."""
    defs = pb.Definitions()
    views = {}  # view name -> (stream, features)
    for stream in NUMERIC_FAMILIES:
        st = defs.streams.add(name=stream, entity_field="e", time_field="t")
        st.fields.add(name="i", type=pb.FieldType.Value("INT64"))
        st.fields.add(name="d", type=pb.FieldType.Value("DOUBLE"))
        for agg in NUMERIC_AGGS:
            for field in ("i", "d"):
                name = f"{stream}_{agg}_{field}"
                view = defs.views.add(name=name, version=1, stream=stream)
                feats = []
                for window in NUMERIC_WINDOWS:
                    feats.append((f"{agg}_{window}", agg, field, window, 0,
                                  None))
                    view.features.add(name=feats[-1][0], aggregation=agg,
                                      field=field, window=window)
                views[name] = (stream, feats)
    stub.ApplyDefinitions(pb.ApplyDefinitionsRequest(definitions=defs),
                          timeout=30)

    # Per entity 20 to 150 events, 20 minutes apart over up to two days (so
    # whole days exist to tile), one family per entity; a few entities with
    # exactly two events.
    events = {stream: {} for stream in NUMERIC_FAMILIES}
    end = T0 - 3 * DAY
    seq = 0
    for stream, families in NUMERIC_FAMILIES.items():
        req = pb.IngestRequest(stream=stream)
        for fam, make in families.items():
            for copy in range(2):
                entity = f"{fam}{copy}"
                n = 2 if copy == 1 and fam in ("e9", "epoch_s") else (
                    rng.randint(20, 150))
                for k in range(n):
                    t = end - k * (HOUR // 3)
                    iv, dv = make(rng, k)
                    seq += 1
                    ev = {"entity": entity, "t": t, "seq": seq,
                          "fields": {"i": iv, "d": dv}}
                    events[stream].setdefault(entity, []).append(ev)
                    pe = req.events.add(event_id=f"{entity}-{k}",
                                        entity=entity)
                    set_time(pe.event_time, t)
                    pe.fields["i"].int64_value = iv
                    pe.fields["d"].double_value = dv
        stub.Ingest(req, timeout=60)
    # Seqs continue after the first part's events.
    first = stub.GetStatus(pb.GetStatusRequest(), timeout=30).watermark - seq
    for per_entity in events.values():
        for evs in per_entity.values():
            for ev in evs:
                ev["seq"] += first

    def as_of_times(evs):
        ts = sorted(e["t"] for e in evs)
        return sorted({ts[0], ts[-1] + 1, ts[len(ts) // 2],
                       (ts[-1] // DAY) * DAY, (ts[-1] // DAY) * DAY + DAY,
                       ts[-1] + 2 * DAY})

    def check_gets(label):
        for name, (stream, feats) in views.items():
            for entity, evs in events[stream].items():
                for as_of in as_of_times(evs):
                    req = pb.GetFeaturesRequest(view=name, entities=[entity])
                    set_time(req.as_of, as_of)
                    want = [oracle(f, evs, as_of) for f in feats]
                    where = f"{label} {name} entity={entity} as_of={as_of}"
                    resp = get_or_out_of_range(grpc, stub, req, want, counts,
                                               where)
                    if resp is not None:
                        compare(want, resp.rows[0].values, where, feats)

    def settled_tiles():
        """Tiles stored once the background builds lookups asked for end."""
        for _ in range(1200):
            st = stub.GetStatus(pb.GetStatusRequest(), timeout=30)
            if st.tile_builds_pending == 0:
                return st.tiles
            time.sleep(0.05)
        raise AssertionError("tile builds still pending after a minute")

    check_gets("get(scan)")  # asks for tiles of whole past days
    assert settled_tiles() > 0, "the adversarial lookups should have built tiles"
    check_gets("get(tiles)")
    tiles = settled_tiles()  # these lookups may have asked for more
    server.terminate()
    server.wait(timeout=30)
    server, stub = start_server()
    assert stub.GetStatus(pb.GetStatusRequest(), timeout=30).tiles == tiles
    check_gets("get(restarted)")

    for name, (stream, feats) in views.items():
        per_entity = events[stream]
        all_times = sorted(e["t"] for evs in per_entity.values()
                           for e in evs)
        for as_of in (all_times[len(all_times) // 2], all_times[-1] + 1):
            want_rows = {}
            for entity, evs in per_entity.items():
                if any(e["t"] < as_of for e in evs):
                    want_rows[entity] = [oracle(f, evs, as_of) for f in feats]
            want_oor = any(st == "OUT_OF_RANGE" for row in want_rows.values()
                           for st, _ in row)
            req = pb.SnapshotRequest(view=name)
            set_time(req.as_of, as_of)
            where = f"snapshot {name} as_of={as_of}"
            rows = rows_or_out_of_range(
                grpc, lambda: [r for chunk in stub.Snapshot(req, timeout=120)
                               for r in chunk.rows],
                want_oor, counts, where)
            if rows is None:
                continue
            if sorted(r.entity for r in rows) != sorted(want_rows):
                counts["failures"] += 1
                print(f"MISMATCH {where}: entities differ")
            for row in rows:
                compare(want_rows[row.entity], row.values,
                        f"{where} entity={row.entity}", feats)

        # A join: every entity at many times, so 1h and 1d windows slide
        # and the sweep removes values.
        labels = []
        for entity, evs in per_entity.items():
            for e in evs[::3]:
                labels.append((entity, e["t"] + rng.choice([0, 1, HOUR])))
        rng.shuffle(labels)
        want = [[oracle(f, per_entity[entity], t) for f in feats]
                for entity, t in labels]
        want_oor = any(st == "OUT_OF_RANGE" for row in want for st, _ in row)

        def requests():
            for start in range(0, len(labels), 100):
                msg = pb.JoinFeaturesRequest()
                if start == 0:
                    msg.view = name
                for entity, t in labels[start:start + 100]:
                    set_time(msg.rows.add(entity=entity).time, t)
                yield msg
        where = f"join {name}"
        got = rows_or_out_of_range(
            grpc, lambda: [r for resp in stub.JoinFeatures(requests(),
                                                           timeout=120)
                           for r in resp.rows],
            want_oor, counts, where)
        if got is None:
            continue
        assert len(got) == len(labels), (where, len(got), len(labels))
        for n, (row, w) in enumerate(zip(got, want)):
            compare(w, row.values, f"{where} row {n} entity={row.entity}",
                    feats)
    return server, stub

def feature_services(rng, pb, stub, features, by_entity, checkpoint,
                     compare, counts):
    """Feature services against the oracle: a second stream keyed by
    merchant, a 2-key service (buyer features of the first stream, merchant
    features of the second, each view in two parts) read by JoinFeatures
    and GetFeatures, and the same parts by one key read by Snapshot. Every part's
    value is the oracle's for its own key's events, at one watermark for
    all parts; a missing key gives its part nulls."""
    defs = pb.Definitions()
    st = defs.streams.add(name="st2", entity_field="m", time_field="t")
    for fname, ftype in FIELDS.items():
        st.fields.add(name=fname, type=pb.FieldType.Value(ftype))
    # The second view: the numeric and list aggregations over st2.
    feats2 = [f for f in features if f[5] is None and f[1] in (
        "sum", "stddev", "last_k", "count_distinct", "min", "avg")]
    view = defs.views.add(name="dv2", version=1, stream="st2")
    for name, agg, field, window, k, _ in feats2:
        view.features.add(name=name, aggregation=agg, field=field,
                          window=window, k=k)
    # Parts take random subsets in random orders; parts 1 and 4 (and 2 and
    # 3) read one stream by one key, so the server sweeps them together.
    take1 = rng.sample(features, 25)
    take3 = list(reversed(feats2[:6]))
    take4 = rng.sample(features, 8)
    # (prefix, view, which key, features taken; None = all)
    parts = [("b_", "dv", 0, take1), ("m_", "dv2", 1, None),
             ("x_", "dv2", 1, take3), ("c_", "dv", 0, take4)]
    for sname, keys in (("svc2", ("buyer", "merchant")), ("svc1", ("k", "k"))):
        svc = defs.services.add(name=sname, version=1)
        for prefix, vname, key, take in parts:
            svc.parts.add(view=vname, view_version=1, key=keys[key],
                          prefix=prefix,
                          features=[f[0] for f in take or []])
    stub.ApplyDefinitions(pb.ApplyDefinitionsRequest(definitions=defs),
                          timeout=30)
    service_feats = take1 + feats2 + take3 + take4

    # st2's events in three batches: its seqs follow the first stream's.
    entities2 = [f"m{n}" for n in range(10)] + ["u1", "u2", "heavy"]
    by_entity2 = {}
    seen = set()
    watermarks = [checkpoint]
    for batch in range(3):
        req = pb.IngestRequest(stream="st2")
        evs = [random_event(rng, n, entities2)
               for n in range(batch * 500, batch * 500 + 500)]
        for ev in evs:
            ev["id"] = ev["id"] and "m" + ev["id"]
            add_event(req, ev)
        resp = stub.Ingest(req, timeout=60)
        fresh = []
        for ev in evs:
            key = ev["id"] or repr((ev["entity"], ev["t"],
                                    sorted(ev["fields"].items())))
            if key not in seen:
                seen.add(key)
                fresh.append(ev)
        # Accepted events take the batch's seqs in order.
        first = resp.watermark - len(fresh) + 1
        for n, ev in enumerate(fresh):
            by_entity2.setdefault(ev["entity"], []).append(
                dict(ev, seq=first + n))
        if batch == 0:
            watermarks.append(resp.watermark)  # st2 partly visible
    watermarks.append(0)
    times = [ev["t"] for evs in by_entity2.values() for ev in evs]

    def visible(events_of, entity, watermark):
        return [e for e in events_of.get(entity, [])
                if not watermark or e["seq"] <= watermark]

    def want_row(keys, t, watermark):
        """The service's expected values: each part by its own key."""
        row = []
        for _, vname, key, take in parts:
            feats = take or feats2
            events_of = by_entity if vname == "dv" else by_entity2
            key = keys.get(("buyer", "merchant")[key])
            for f in feats:
                row.append(("ok", None) if not key else
                           oracle(f, visible(events_of, key, watermark), t))
        return row

    labels = []
    for n in range(300):
        keys = {}
        if rng.random() < 0.85:
            keys["buyer"] = rng.choice(list(by_entity) + ["nobody"])
        if rng.random() < 0.85:
            keys["merchant"] = rng.choice(entities2 + ["nobody"])
        t = rng.choice([rng.choice(times), rng.choice(times) + 1,
                        T0 - 11 * DAY, T0 + DAY])
        labels.append((keys, t))
    for watermark in watermarks:
        def requests():
            for start in range(0, len(labels), 64):
                msg = pb.JoinFeaturesRequest()
                if start == 0:
                    msg.service, msg.watermark = "svc2", watermark
                for n, (keys, t) in enumerate(labels[start:start + 64]):
                    row = msg.rows.add(passthrough=[f"row{start + n}"])
                    row.keys.update(keys)
                    set_time(row.time, t)
                yield msg
        got = []
        names = None
        for resp in stub.JoinFeatures(requests(), timeout=120):
            names = names or list(resp.feature_names)
            got.extend(resp.rows)
        assert names == [prefix + f[0] for prefix, _, _, take in parts
                         for f in take or feats2], names
        assert len(got) == len(labels), (len(got), len(labels))
        for n, (row, (keys, t)) in enumerate(zip(got, labels)):
            assert row.row_index == n and list(row.passthrough) == [f"row{n}"]
            assert len(row.values) == len(service_feats)
            compare(want_row(keys, t, watermark), row.values,
                    f"service join row {n} keys={keys} t={t} W={watermark}",
                    service_feats)
        # GetFeatures of the service: a few rows of keys at one time.
        req = pb.GetFeaturesRequest(service="svc2", watermark=watermark)
        as_of = rng.choice(times)
        set_time(req.as_of, as_of)
        for keys, _ in labels[:40]:
            req.key_rows.add().keys.update(keys)
        resp = stub.GetFeatures(req, timeout=30)
        for n, (keys, _) in enumerate(labels[:40]):
            compare(want_row(keys, as_of, watermark), resp.rows[n].values,
                    f"service get keys={keys} as_of={as_of} W={watermark}",
                    service_feats)

    # Snapshot of the one-key service: the entities of either stream with a
    # visible event before T, in byte order, each row both parts' values.
    for watermark in watermarks[1:]:
        for as_of in (rng.choice(times), T0 - 5 * DAY):
            req = pb.SnapshotRequest(service="svc1", watermark=watermark)
            set_time(req.as_of, as_of)
            rows = [r for chunk in stub.Snapshot(req, timeout=120)
                    for r in chunk.rows]
            want_entities = sorted(
                {e for events_of in (by_entity, by_entity2)
                 for e in events_of
                 if any(ev["t"] < as_of
                        for ev in visible(events_of, e, watermark))},
                key=lambda e: e.encode("utf-8"))
            if [r.entity for r in rows] != want_entities:
                counts["failures"] += 1
                print(f"MISMATCH service snapshot entities as_of={as_of} "
                      f"W={watermark}: want {want_entities}, got "
                      f"{[r.entity for r in rows]}")
            for row in rows:
                keys = {"buyer": row.entity, "merchant": row.entity}
                compare(want_row(keys, as_of, watermark), row.values,
                        f"service snapshot entity={row.entity} "
                        f"as_of={as_of} W={watermark}", service_feats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rawfeatd", required=True)
    ap.add_argument("--protos", required=True)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--queries", type=int, default=150)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="rawfeat-diff-")
    started = []  # every rawfeatd started
    try:
        generate_protos(args.protos, work)
        import grpc
        from rawfeat.v1 import rawfeat_pb2 as pb
        from rawfeat.v1 import rawfeat_pb2_grpc as pbg

        def start_server():
            port_file = os.path.join(work, "port")
            if os.path.exists(port_file):
                os.remove(port_file)
            proc = subprocess.Popen(
                [args.rawfeatd, "--listen=127.0.0.1:0",
                 "--data_dir=" + os.path.join(work, "data"),
                 "--port_file=" + port_file],
                stderr=subprocess.DEVNULL)
            started.append(proc)  # stopped at the end, whatever happens
            for _ in range(600):
                if os.path.exists(port_file) and open(port_file).read():
                    break
                time.sleep(0.05)
            port = int(open(port_file).read())
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            return proc, pbg.FeatureStoreStub(channel)

        server, stub = start_server()

        defs = pb.Definitions()
        st = defs.streams.add(name="st", entity_field="e", time_field="t")
        for fname, ftype in FIELDS.items():
            st.fields.add(name=fname, type=pb.FieldType.Value(ftype))
        view = defs.views.add(name="dv", version=1, stream="st")
        features = features_under_test()
        for name, agg, field, window, k, flt in features:
            f = view.features.add(name=name, aggregation=agg, field=field,
                                  window=window, k=k)
            if flt:
                f.filter.field, f.filter.op = flt[0], flt[1]
                for lit in flt[2]:
                    v = f.filter.values.add()
                    if isinstance(lit, bool):
                        v.bool_value = lit
                    elif isinstance(lit, int):
                        v.int64_value = lit
                    elif isinstance(lit, float):
                        v.double_value = lit
                    else:
                        v.string_value = lit
        stub.ApplyDefinitions(pb.ApplyDefinitionsRequest(definitions=defs),
                              timeout=30)

        entities = [f"u{n}" for n in range(25)] + ["heavy"] * 10
        events = [random_event(rng, n, entities) for n in range(args.events)]
        # Some exact duplicates of earlier events: no-ops.
        events += rng.sample(events, 50)
        by_id = {}
        accepted = []
        checkpoint = None
        for start in range(0, len(events), 500):
            req = pb.IngestRequest(stream="st")
            for ev in events[start:start + 500]:
                add_event(req, ev)
            resp = stub.Ingest(req, timeout=60)
            # The server's seq order is the batch order minus duplicates.
            for ev in events[start:start + 500]:
                key = ev["id"] or repr((ev["entity"], ev["t"],
                                        sorted(ev["fields"].items())))
                if key in by_id:
                    continue
                by_id[key] = ev
                accepted.append(dict(ev, seq=len(accepted) + 1))
            assert resp.watermark == len(accepted), (resp.watermark,
                                                     len(accepted))
            if checkpoint is None and start >= len(events) // 2:
                checkpoint = resp.watermark

        by_entity = {}
        for ev in accepted:
            by_entity.setdefault(ev["entity"], []).append(ev)
        times = [ev["t"] for ev in accepted]
        counts = {"checked": 0, "failures": 0}

        def compare(want_status, got_values, where, feats=features):
            for f, (status, want), got in zip(feats, want_status,
                                             got_values):
                counts["checked"] += 1
                if status == "ok" and same(want, from_proto(got),
                                           FIELDS.get(f[2]), f[1]):
                    continue
                counts["failures"] += 1
                if counts["failures"] <= 20:
                    print(f"MISMATCH {f[0]} {where}: want "
                          f"{want if status == 'ok' else status!r}, "
                          f"got {from_proto(got)!r}")

        def visible_events(entity, watermark):
            return [e for e in by_entity.get(entity, [])
                    if not watermark or e["seq"] <= watermark]

        # GetFeatures, one entity at a time.
        for q in range(args.queries):
            entity = rng.choice(entities + ["nobody"])
            as_of = rng.choice(times) + rng.choice([0, 0, 1, -1, HOUR])
            watermark = checkpoint if q % 3 == 0 else 0
            req = pb.GetFeaturesRequest(view="dv", entities=[entity],
                                        watermark=watermark)
            set_time(req.as_of, as_of)
            want_status = [oracle(f, visible_events(entity, watermark), as_of)
                           for f in features]
            resp = get_or_out_of_range(grpc, stub, req, want_status,
                                       counts, f"get entity={entity}")
            if resp is None:
                continue
            assert list(resp.feature_names) == [f[0] for f in features]
            compare(want_status, resp.rows[0].values,
                    f"get entity={entity} as_of={as_of} W={watermark}")

        # Snapshot: exactly the entities with a visible event before T, in
        # UTF-8 byte order, each equal to the oracle.
        snapshot_times = [rng.choice(times) for _ in range(3)] + [
            T0 - 5 * DAY, T0 - 10 * DAY - HOUR]
        for n, as_of in enumerate(snapshot_times):
            watermark = checkpoint if n % 2 else 0
            req = pb.SnapshotRequest(view="dv", watermark=watermark)
            set_time(req.as_of, as_of)
            rows = []
            for chunk in stub.Snapshot(req, timeout=120):
                assert chunk.watermark == (watermark or len(accepted))
                rows.extend(chunk.rows)
            want_entities = sorted(
                {e for e in by_entity
                 if any(ev["t"] < as_of
                        for ev in visible_events(e, watermark))},
                key=lambda e: e.encode("utf-8"))
            got_entities = [r.entity for r in rows]
            if got_entities != want_entities:
                counts["failures"] += 1
                print(f"MISMATCH snapshot entities as_of={as_of}: want "
                      f"{want_entities}, got {got_entities}")
            for row in rows:
                want_status = [oracle(f, visible_events(row.entity, watermark),
                                      as_of) for f in features]
                compare(want_status, row.values,
                        f"snapshot entity={row.entity} as_of={as_of}")

        # JoinFeatures: unsorted labels (duplicates, exact event times,
        # before the first event, unknown entities) in several messages;
        # rows come back in input order with their passthrough.
        labels = []
        for n in range(400):
            entity = rng.choice(entities + ["nobody"])
            t = rng.choice([rng.choice(times), rng.choice(times) + 1,
                            T0 - 11 * DAY, T0 + DAY])
            labels.append((entity, t, f"row{n}"))
            if rng.random() < 0.1:
                labels.append((entity, t, f"dup{n}"))
        for watermark in (checkpoint, 0):
            def requests():
                for start in range(0, len(labels), 64):
                    msg = pb.JoinFeaturesRequest()
                    if start == 0:
                        msg.view, msg.watermark = "dv", watermark
                    for entity, t, tag in labels[start:start + 64]:
                        row = msg.rows.add(entity=entity, passthrough=[tag])
                        set_time(row.time, t)
                    yield msg
            got_rows = []
            for resp in stub.JoinFeatures(requests(), timeout=120):
                assert resp.watermark == (watermark or len(accepted))
                got_rows.extend(resp.rows)
            assert len(got_rows) == len(labels), (len(got_rows), len(labels))
            for n, (row, (entity, t, tag)) in enumerate(zip(got_rows, labels)):
                assert row.row_index == n and row.entity == entity
                assert list(row.passthrough) == [tag]
                want_status = [oracle(f, visible_events(entity, watermark), t)
                               for f in features]
                compare(want_status, row.values,
                        f"join row {n} entity={entity} t={t} W={watermark}")
            # The same labels as LabelColumns with a columnar answer.
            def columnar_requests():
                for start in range(0, len(labels), 100):
                    msg = pb.JoinFeaturesRequest()
                    if start == 0:
                        msg.view, msg.watermark = "dv", watermark
                        msg.columnar = True
                    for entity, t, _ in labels[start:start + 100]:
                        msg.labels.times_us.append(t)
                        msg.labels.entities.append(entity)
                    yield msg
            by_index = {}
            for resp in stub.JoinFeatures(columnar_requests(), timeout=120):
                assert not resp.rows
                by_index.update(columns_to_values(pb, resp.columns))
            assert sorted(by_index) == list(range(len(labels)))
            for n, (entity, t, _) in enumerate(labels):
                want_status = [oracle(f, visible_events(entity, watermark), t)
                               for f in features]
                compare(want_status, by_index[n],
                        f"columnar join row {n} entity={entity} t={t} "
                        f"W={watermark}")

        feature_services(rng, pb, stub, features, by_entity, checkpoint,
                         compare, counts)

        server, stub = adversarial_numbers(
            args, rng, pb, grpc, stub, server, start_server, compare, counts)

        checked, failures = counts["checked"], counts["failures"]
        print(f"differential: {checked} feature values compared, "
              f"{failures} mismatches")
        return 1 if failures or checked == 0 else 0
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
