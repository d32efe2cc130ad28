#!/usr/bin/python3
"""Randomized differential test of GetFeatures, Snapshot and JoinFeatures
against a plain-Python oracle.

Starts a real rawfeatd, ingests random events through the real gRPC API, and
compares every feature value with an independent reference written here in
plain Python (math.fsum for sums, exact fractions for stddev).

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
        return "ok", math.fsum(vals)
    if not sel:
        return "ok", 0 if agg == "count_distinct" else None
    if agg == "avg":
        if ftype == "INT64":
            return "ok", float(sum(vals)) / len(vals)
        return "ok", math.fsum(vals) / len(vals)
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
        n = len(vals)
        if n < 2:
            return "ok", None
        xs = [float(v) for v in vals]
        s1 = float(sum(Fraction(x) for x in xs))
        s2 = float(sum(Fraction(x) ** 2 for x in xs))
        var = (s2 - s1 * s1 / n) / (n - 1)
        return "ok", math.sqrt(var if var > 0 else 0.0)
    raise ValueError(agg)


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


# ------------------------------------------------------------ the driver

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
    server = None
    try:
        generate_protos(args.protos, work)
        import grpc
        from rawfeat.v1 import rawfeat_pb2 as pb
        from rawfeat.v1 import rawfeat_pb2_grpc as pbg

        port_file = os.path.join(work, "port")
        server = subprocess.Popen(
            [args.rawfeatd, "--listen=127.0.0.1:0",
             "--data_dir=" + os.path.join(work, "data"),
             "--port_file=" + port_file],
            stderr=subprocess.DEVNULL)
        for _ in range(600):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pbg.FeatureStoreStub(channel)

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
                pe = req.events.add(event_id=ev["id"], entity=ev["entity"])
                pe.event_time.seconds = ev["t"] // 10**6
                pe.event_time.nanos = (ev["t"] % 10**6) * 1000
                for fname, val in ev["fields"].items():
                    kind = {"INT64": "int64_value", "DOUBLE": "double_value",
                            "STRING": "string_value",
                            "BOOL": "bool_value"}[FIELDS[fname]]
                    setattr(pe.fields[fname], kind, val)
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

        def compare(want_status, got_values, where):
            for f, (status, want), got in zip(features, want_status,
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

        def set_time(ts, micros):
            ts.seconds = micros // 10**6
            ts.nanos = (micros % 10**6) * 1000

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
            try:
                resp = stub.GetFeatures(req, timeout=30)
            except grpc.RpcError as err:
                if (err.code() == grpc.StatusCode.OUT_OF_RANGE and
                        any(s == "OUT_OF_RANGE" for s, _ in want_status)):
                    continue
                raise
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

        checked, failures = counts["checked"], counts["failures"]
        print(f"differential: {checked} feature values compared, "
              f"{failures} mismatches")
        return 1 if failures or checked == 0 else 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
