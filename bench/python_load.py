#!/usr/bin/python3
"""The Python client's analyst paths against the CLI + pandas.read_csv.

Starts a real rawfeatd, loads a Zipf workload like analyst_load's (the
`orders` stream and the 8-feature `bench` view of bench/workload.cc; events
generated with numpy, written to CSV and ingested by the rawfeat CLI), then
times in one run, at one watermark:

  snapshot: client.snapshot -> DataFrame  vs  rawfeat snapshot + read_csv
  join:     client.join(labels DataFrame) vs  rawfeat join + read_csv

and reports the ratios and this process's peak RSS. Bounded by --events
and --labels.

Usage: PYTHONPATH=build/python bench/python_load.py [--events N] [--labels N]
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd

import rawfeat

END = pd.Timestamp("2026-11-24T00:00:00Z")
# The stream and view of the C++ load tools (bench/workload.cc embeds it).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "bench.textproto")) as _f:
    DEFINITIONS = _f.read()


def zipf_ranks(rng, n, entities, s=1.1):
    weights = 1.0 / np.arange(1, entities + 1) ** s
    return rng.choice(entities, size=n, p=weights / weights.sum())


def read_csv_typed(path):
    """A CLI output file read with the dtypes its .meta.json names."""
    with open(path + ".meta.json") as f:
        meta = json.load(f)
    return pd.read_csv(path, dtype={c["name"]: c["pandas_dtype"]
                                    for c in meta["columns"]})


def run_cli(cmd):
    """Runs a CLI command; its stderr is in the exception when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {done.returncode}: "
                           f"{done.stderr.strip()}")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def reset_peak_rss():
    """Makes VmHWM (this process's peak RSS) start again from now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_mib(field="VmHWM"):
    """This process's peak (VmHWM) or current (VmRSS) RSS in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed_peak(fn):
    """(result, seconds, peak RSS in MiB while fn ran)."""
    reset_peak_rss()
    out, seconds = timed(fn)
    return out, seconds, rss_mib()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rawfeatd", default="build/server/rawfeatd")
    ap.add_argument("--rawfeat", default="build/client/rawfeat")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--labels", type=int, default=500_000)
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rawfeat-pyload-")
    server = None
    try:
        with open(os.path.join(work, "defs.textproto"), "w") as f:
            f.write(DEFINITIONS)
        port_file = os.path.join(work, "port")
        server = subprocess.Popen(
            [args.rawfeatd, "--listen=127.0.0.1:0", "--schemas=" + work,
             "--data_dir=" + os.path.join(work, "data"), "--sync=false",
             "--port_file=" + port_file], stderr=subprocess.DEVNULL)
        while not (os.path.exists(port_file) and os.path.getsize(port_file)):
            time.sleep(0.05)
        with open(port_file) as f:
            address = "127.0.0.1:" + f.read().strip()
        cli = [args.rawfeat, "--server", address]

        rng = np.random.default_rng(42)
        span_us = args.days * 86400 * 10**6
        n = args.events
        events = pd.DataFrame({
            "event_id": np.char.add("e", np.arange(n).astype(str)),
            "user_id": np.char.add("user-", zipf_ranks(rng, n, args.entities).astype(str)),
            "order_time": pd.to_datetime(
                END.value // 1000 - 1 - rng.integers(0, span_us, n), unit="us"),
            "amount": rng.integers(0, 50000, n) / 100,
            "quantity": rng.integers(1, 6, n),
            "category": rng.choice(["books", "toys", "food", "garden", "music"], n),
        })
        events_csv = os.path.join(work, "events.csv")
        events.assign(order_time=events["order_time"].dt.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(events_csv, index=False)
        _, load = timed(lambda: subprocess.run(
            cli + ["ingest", "--stream", "orders", events_csv], check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        print(f"python_load: {n} events, {args.entities} entities, "
              f"{args.labels} labels; loaded by the CLI in {load:.1f} s")
        client = rawfeat.Client(address)
        watermark = int(client.status()["watermark"])

        del events  # the peaks below are the client's, not the generator's
        snap, py_snap, snap_peak = timed_peak(lambda: client.snapshot(
            "bench", END, watermark=watermark))
        out = os.path.join(work, "snap.csv")

        def cli_snapshot():
            run_cli(cli + ["snapshot", "--view", "bench", "--as-of",
                           END.isoformat(), "--watermark", str(watermark),
                           "--out", out])
            return read_csv_typed(out)
        csv_snap, cli_snap = timed(cli_snapshot)
        assert len(snap) == len(csv_snap), (len(snap), len(csv_snap))

        labels = pd.DataFrame({
            "label_id": np.arange(args.labels),
            "user_id": np.char.add("user-", zipf_ranks(rng, args.labels,
                                                        args.entities).astype(str)),
            "ts": pd.to_datetime(END.value // 1000 - rng.integers(0, span_us, args.labels),
                                 unit="us"),
        })
        base = rss_mib("VmRSS")
        train, py_join, join_peak = timed_peak(lambda: client.join(
            "bench", labels, time_column="ts", watermark=watermark))
        labels_csv = os.path.join(work, "labels.csv")
        labels.assign(ts=labels["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).to_csv(
            labels_csv, index=False)
        out = os.path.join(work, "train.csv")

        def cli_join():
            run_cli(cli + ["join", "--view", "bench", "--labels", labels_csv,
                           "--time-column", "ts", "--watermark", str(watermark),
                           "--out", out])
            return read_csv_typed(out)
        csv_train, cli_join_s = timed(cli_join)
        assert len(train) == len(csv_train)
        same = np.allclose(train["spend_1d"].to_numpy(float),
                           csv_train["spend_1d"].to_numpy(float), equal_nan=True)

        print(f"\n{'question':34} {'client s':>9} {'CLI+csv s':>10} {'client/CLI':>11}")
        print(f"{'snapshot, all entities':34} {py_snap:9.2f} {cli_snap:10.2f} "
              f"{py_snap / cli_snap:11.2f}")
        print(f"{'join, ' + str(args.labels) + ' labels':34} {py_join:9.2f} "
              f"{cli_join_s:10.2f} {py_join / cli_join_s:11.2f}")
        print(f"rows agree (join spend_1d): {same}")
        print(f"python peak RSS: {snap_peak:.0f} MiB during the snapshot, "
              f"{join_peak:.0f} MiB during the join (the labels frame and "
              f"the process held {base:.0f} MiB before it)")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
