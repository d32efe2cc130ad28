#!/usr/bin/python3
"""The Python client (python/rawfeat) against a real rawfeatd.

Values of get_features, snapshot and join equal the C++ client's (the
rawfeat CLI's JSON Lines) on random data with nulls, lists, -0.0, large
INT64 and non-ASCII strings; labels in three time zones give the same rows;
ingest of a DataFrame is idempotent and refuses bad dtypes before sending.

Usage: client_test.py RAWFEATD RAWFEAT SCHEMAS_DIR  (PYTHONPATH=build/python)
"""

import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import pandas as pd

import rawfeat

RAWFEATD, RAWFEAT, SCHEMAS = sys.argv[1:4]

TYPED = """
streams {
  name: "typed" entity_field: "k" time_field: "t"
  fields { name: "i" type: INT64 }
  fields { name: "d" type: DOUBLE }
  fields { name: "s" type: STRING }
  fields { name: "b" type: BOOL }
}
views {
  name: "typed_view" version: 1 stream: "typed"
  features { name: "n" aggregation: "count" window: "1d" }
  features { name: "sum_i" aggregation: "sum" field: "i" window: "7d" }
  features { name: "max_i" aggregation: "max" field: "i" window: "lifetime" }
  features { name: "last_d" aggregation: "last" field: "d" window: "lifetime" }
  features { name: "min_d" aggregation: "min" field: "d" window: "1d" }
  features { name: "last_s" aggregation: "last" field: "s" window: "lifetime" }
  features { name: "last_b" aggregation: "last" field: "b" window: "7d" }
  features { name: "recent_d" aggregation: "last_k" field: "d" window: "7d" k: 3 }
  features { name: "recent_s" aggregation: "last_k" field: "s" window: "lifetime" k: 2 }
}
services {
  name: "pair" version: 1
  parts { view: "typed_view" view_version: 1 key: "a" prefix: "a_"
          features: "sum_i" features: "last_s" }
  parts { view: "typed_view" view_version: 1 key: "b" prefix: "b_"
          features: "recent_d" }
}
"""
T0 = pd.Timestamp("2026-11-02T12:00:00Z")


def start_rawfeatd(listen, data_dir, port_file):
    """Starts rawfeatd with the example schemas; returns (process, port)."""
    if os.path.exists(port_file):
        os.remove(port_file)
    proc = subprocess.Popen(
        [RAWFEATD, "--listen=" + listen, "--schemas=" + SCHEMAS,
         "--data_dir=" + data_dir, "--port_file=" + port_file],
        stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(port_file):
            with open(port_file) as f:
                port = f.read().strip()
            if port:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("rawfeatd did not start")


def same(a, b):
    """Equal values, doubles bit for bit (-0.0 is not 0.0), lists by item,
    missing = None."""
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list)
                and len(a) == len(b) and all(map(same, a, b)))
    a = None if a is None or a is pd.NA or (isinstance(a, float) and math.isnan(a)) else a
    b = None if b is None or b is pd.NA or (isinstance(b, float) and math.isnan(b)) else b
    if isinstance(a, float) or isinstance(b, float):
        return (a is not None and b is not None and
                struct.pack("<d", float(a)) == struct.pack("<d", float(b)))
    return a == b


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="rawfeat-pyclient-")
        cls.server, port = start_rawfeatd(
            "127.0.0.1:0", os.path.join(cls.work, "data"),
            os.path.join(cls.work, "port"))
        cls.address = "127.0.0.1:" + port
        defs = os.path.join(cls.work, "typed.textproto")
        with open(defs, "w") as f:
            f.write(TYPED)
        cls.cli("apply", defs)
        cls.client = rawfeat.Client(cls.address)
        rng = random.Random(16)
        rows = []
        for n in range(400):
            row = {"event_id": f"e{n}", "k": rng.choice(["u1", "u2", "ü3", "日本", "x"]),
                   "t": T0 - pd.Timedelta(minutes=rng.randint(0, 9 * 24 * 60))}
            if rng.random() < 0.8:
                # Large, but a 7-day sum of them stays inside int64.
                row["i"] = rng.choice([rng.randint(-5, 5), 2**55 + rng.randint(0, 9),
                                       -(2**55)])
            if rng.random() < 0.8:
                row["d"] = rng.choice([-0.0, 0.0, 0.1, 1e300, -2.5, 5e-324])
            if rng.random() < 0.8:
                row["s"] = rng.choice(["a", "é", "日本語", "", "z"])
            if rng.random() < 0.7:
                row["b"] = rng.random() < 0.5
            rows.append(row)
        df = pd.DataFrame(rows)
        df["i"] = df["i"].astype("Int64")
        df["b"] = df["b"].astype("boolean")
        cls.summary = cls.client.ingest("typed", df, batch_size=150)
        cls.events = df

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.terminate()
        cls.server.wait(timeout=30)
        shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def cli(cls, *args):
        return subprocess.run([RAWFEAT, "--server", cls.address, *args],
                              check=True, capture_output=True, text=True).stdout

    def jsonl(self, *args):
        out = os.path.join(self.work, "out.jsonl")
        self.cli(*args, "--out", out, "--format", "jsonl")
        with open(out) as f:
            return [json.loads(line) for line in f]

    def assert_frame_matches(self, frame, rows, columns):
        self.assertEqual(len(frame), len(rows))
        for n, want in enumerate(rows):
            for c in columns:
                got = frame[c].iloc[n]
                got = got if isinstance(got, list) else (
                    None if got is pd.NA else got)
                self.assertTrue(same(got, want.get(c)),
                                f"row {n} column {c}: {got!r} vs {want.get(c)!r}")

    def test_ingest_counts_and_repeats_are_duplicates(self):
        self.assertEqual(self.summary.accepted, 400)
        before = int(self.client.status()["watermark"])
        again = self.client.ingest("typed", self.events)
        self.assertEqual((again.accepted, again.duplicates), (0, 400))
        self.assertEqual(again.watermark, before)  # nothing was written

    def test_conflicts_reject_the_batch_or_only_the_row(self):
        bad = self.events.head(3).copy()
        bad.loc[1, "s"] = "changed"
        before = self.client.status()["watermark"]
        with self.assertRaises(rawfeat.RawfeatError) as err:
            self.client.ingest("typed", bad)
        self.assertEqual(err.exception.code.name, "INVALID_ARGUMENT")
        self.assertIn("event_id 'e1'", err.exception.message)
        skipped = self.client.ingest("typed", bad, on_invalid="skip_row")
        self.assertEqual([r["index"] for r in skipped.rejected], [1])
        self.assertEqual(skipped.duplicates, 2)
        self.assertEqual(self.client.status()["watermark"], before)

    def test_an_iterable_of_dicts_is_sent_batch_by_batch(self):
        sent_before = []

        def rows():
            for n in range(25):
                if n == 12:  # batch 1 was sent before row 12 is read
                    sent_before.append(int(self.client.status()["streams"][0]
                                           .get("events", 0)))
                row = {"event_id": f"g{n}", "user_id": f"u{n % 3}",
                       "order_time": T0 - pd.Timedelta(minutes=n),
                       "amount": 1.5 * n, "quantity": n, "category": "books"}
                if n % 4 == 0:
                    row["coupon"] = None   # absent, like a missing key
                elif n % 4 == 1:
                    row["is_gift"] = n % 8 == 1
                yield row
        streams = [s["name"] for s in self.client.status()["streams"]]
        self.assertEqual(streams[0], "orders")
        summary = self.client.ingest("orders", rows(), batch_size=10)
        self.assertEqual((summary.accepted, summary.batches), (25, 3))
        self.assertEqual(sent_before, [10])
        # A conflicting row in the second batch: its index counts from the
        # start of the data.
        changed = list(rows())
        changed[13]["amount"] = -1.0
        skipped = self.client.ingest("orders", iter(changed), batch_size=10,
                                     on_invalid="skip_row")
        self.assertEqual([r["index"] for r in skipped.rejected], [13])
        self.assertEqual(skipped.duplicates, 24)
        with self.assertRaisesRegex(ValueError, "numbers are not times"):
            self.client.ingest("orders", [dict(changed[0], order_time=1)])
        got = self.client.get_features("user_orders", ["u1"], as_of=T0)
        self.assertEqual(got["orders_7d"].iloc[0], 8)

    def test_a_wrong_dtype_names_the_column_before_sending(self):
        bad = self.events.head(2).copy()
        bad["i"] = ["1", "2"]
        before = self.client.status()["watermark"]
        with self.assertRaisesRegex(TypeError, "column 'i'"):
            self.client.ingest("typed", bad.assign(event_id=["n1", "n2"]))
        self.assertEqual(self.client.status()["watermark"], before)

    def test_snapshot_and_lookup_equal_the_cli(self):
        snap = self.client.snapshot("typed_view", T0)
        wm = snap.attrs["watermark"]
        rows = self.jsonl("snapshot", "--view", "typed_view", "--as-of",
                          "2026-11-02T12:00:00Z", "--watermark", str(wm))
        names = [c for c in snap.columns if c != "entity"]
        self.assertEqual(list(snap["entity"]), [r["entity"] for r in rows])
        self.assert_frame_matches(snap, rows, names)
        self.assertEqual(str(snap["sum_i"].dtype), "Int64")
        self.assertEqual(str(snap["last_s"].dtype), "string")
        self.assertEqual(str(snap["entity"].dtype), "string")
        before_all = self.client.snapshot("typed_view", T0 - pd.Timedelta(days=400))
        self.assertEqual(list(before_all.columns), list(snap.columns))
        self.assertEqual(len(before_all), 0)
        got = self.client.get_features("typed_view", ["日本", "nobody"], as_of=T0,
                                       watermark=wm)
        self.assertEqual(got.attrs["watermark"], wm)
        want = [r for r in rows if r["entity"] == "日本"][0]
        self.assert_frame_matches(got.head(1), [want], names)
        self.assertEqual(got["n"].iloc[1], 0)
        self.assertIs(got["last_s"].iloc[1], pd.NA)

    def test_join_equals_the_cli_and_its_watermark_rebuilds_it(self):
        rng = random.Random(3)
        labels = pd.DataFrame({
            "label": range(200),
            "k": [rng.choice(["u1", "ü3", "日本", "nobody"]) for _ in range(200)],
            "when": [T0 - pd.Timedelta(minutes=rng.randint(0, 9 * 24 * 60))
                     for _ in range(200)],
        })
        train = self.client.join("typed_view", labels, time_column="when")
        self.assertEqual(list(train.columns[:3]), ["label", "k", "when"])
        self.assertTrue(train[["label", "k", "when"]].equals(labels))
        path = os.path.join(self.work, "labels.csv")
        labels.assign(when=labels["when"].map(lambda t: t.isoformat())).to_csv(
            path, index=False)
        rows = self.jsonl("join", "--view", "typed_view", "--labels", path,
                          "--time-column", "when", "--watermark",
                          str(train.attrs["watermark"]))
        names = list(train.columns[3:])
        self.assert_frame_matches(train, rows, names)
        # The columnar join decodes to the dtypes a lookup has.
        lookup = self.client.get_features("typed_view", ["u1"], as_of=T0)
        self.assertEqual([str(train[c].dtype) for c in names],
                         [str(lookup[c].dtype) for c in names])
        self.assertEqual(str(train["last_b"].dtype), "boolean")
        empty = self.client.join("typed_view", labels.head(0), time_column="when")
        self.assertEqual(list(empty.columns), list(train.columns))
        self.assertEqual(len(empty), 0)
        # Later events do not change a join pinned at its watermark.
        late = self.events.head(5).assign(
            event_id=[f"late{n}" for n in range(5)],
            t=[T0 - pd.Timedelta(hours=n + 1) for n in range(5)])
        self.client.ingest("typed", late)
        again = self.client.join("typed_view", labels, time_column="when",
                                 watermark=train.attrs["watermark"])
        self.assertTrue(again.equals(train))

    def test_time_zones_give_the_same_rows(self):
        # Across the US DST change (2026-11-01 06:00 UTC).
        utc = pd.Series(pd.to_datetime(
            ["2026-11-01T05:30:00", "2026-11-01T06:30:00", "2026-11-02T11:00:00"]))
        frames = []
        for times in (utc,                                         # naive = UTC
                      utc.dt.tz_localize("UTC").dt.tz_convert("Asia/Seoul"),
                      utc.dt.tz_localize("UTC").dt.tz_convert("America/New_York"),
                      utc.dt.strftime("%Y-%m-%dT%H:%M:%SZ")):      # strings
            labels = pd.DataFrame({"k": ["u1", "u2", "日本"], "t": times})
            frames.append(self.client.join("typed_view", labels,
                                           watermark=self.summary.watermark))
        for other in frames[1:]:
            self.assertTrue(other.drop(columns="t").equals(
                frames[0].drop(columns="t")))

    def test_a_service_join_reads_each_key_column(self):
        labels = pd.DataFrame({"a": ["u1", None, "日本"], "b": ["u2", "u1", None],
                               "t": [T0, T0, T0]})
        train = self.client.join(service="pair", labels=labels,
                                 watermark=self.summary.watermark)
        self.assertEqual(list(train.columns[3:]),
                         ["a_sum_i", "a_last_s", "b_recent_d"])
        self.assertEqual(train.attrs["service"], "pair")
        self.assertIs(train["a_sum_i"].iloc[1], pd.NA)    # no key a
        self.assertIsNone(train["b_recent_d"].iloc[2])   # no key b
        alone = self.client.get_features("typed_view", ["u2"], as_of=T0,
                                         watermark=self.summary.watermark)
        self.assertTrue(same(train["b_recent_d"].iloc[0],
                             alone["recent_d"].iloc[0]))

    def test_an_ingest_survives_a_server_restart_with_an_exact_count(self):
        # A server of its own, SIGKILLed and restarted on the same port and
        # data while a many-batch ingest runs: the client retries
        # UNAVAILABLE, acknowledged batches are durable, and a batch
        # resent after the restart is deduplicated.
        data = os.path.join(self.work, "restart-data")
        port_file = os.path.join(self.work, "restart-port")

        def start(listen):
            return start_rawfeatd(listen, data, port_file)
        proc, port = start("127.0.0.1:0")
        client = rawfeat.Client("127.0.0.1:" + port, retries=20)
        rows = pd.DataFrame({
            "event_id": [f"r{n}" for n in range(6000)],
            "user_id": [f"u{n % 97}" for n in range(6000)],
            "order_time": pd.Timestamp("2026-11-01") + pd.to_timedelta(
                range(6000), unit="s"),
            "amount": [float(n % 500) for n in range(6000)],
            "quantity": [1 + n % 4 for n in range(6000)],
            "category": ["books"] * 6000,
        })
        result = {}

        def ingest():
            try:
                result["summary"] = client.ingest("orders", rows, batch_size=20)
            except Exception as err:  # reported by the main thread
                result["error"] = err
        worker = threading.Thread(target=ingest)
        worker.start()
        # Killed once some batches are in (or when the ingest is over: the
        # count must be exact either way).
        while worker.is_alive() and int(
                client.status().get("watermark", 0)) < 600:
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        proc, _ = start("127.0.0.1:" + port)
        try:
            worker.join(timeout=300)
            self.assertNotIn("error", result)
            summary = result["summary"]
            # Every row is stored exactly once, whatever the kill cut.
            self.assertEqual(int(client.status().get("watermark", 0)), 6000)
            again = client.ingest("orders", rows, batch_size=1000)
            self.assertEqual((again.accepted, again.duplicates), (0, 6000))
            self.assertEqual(summary.accepted + summary.duplicates, 6000)
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=30)

    def test_numbers_are_not_taken_as_times(self):
        labels = pd.DataFrame({"k": ["u1"], "t": [1795000000]})
        with self.assertRaisesRegex(ValueError, "numbers are not times"):
            self.client.join("typed_view", labels)

    def test_errors_carry_the_code(self):
        with self.assertRaises(rawfeat.RawfeatError) as err:
            self.client.get_features("no_such_view", ["u1"])
        self.assertEqual(err.exception.code.name, "NOT_FOUND")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
