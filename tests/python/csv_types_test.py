#!/usr/bin/python3
"""Feature files load into pandas with their types.

Starts a real rawfeatd, ingests events whose values are adversarial for
CSV typing (whole DOUBLEs, empty strings next to nulls, booleans with
nulls), writes a snapshot and a join as CSV and as JSON Lines with the real
CLI, then reads each CSV with pandas using the dtypes its .meta.json names,
and checks every numeric, boolean and list column equals the JSON Lines
file's (which carries its types itself), and that the CSV tells an empty
string from a null.

Usage: csv_types_test.py RAWFEATD RAWFEAT SCHEMAS_DIR
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pandas as pd

VIEW = """
views {
  name: "typed" version: 1 stream: "orders"
  features { name: "n" aggregation: "count" window: "lifetime" }
  features { name: "spend" aggregation: "sum" field: "amount" window: "lifetime" }
  features { name: "items" aggregation: "sum" field: "quantity" window: "lifetime" }
  features { name: "top" aggregation: "max" field: "amount" window: "lifetime" }
  features { name: "gift" aggregation: "last" field: "is_gift" window: "lifetime" }
  features { name: "coupon" aggregation: "last" field: "coupon" window: "lifetime" }
  features { name: "recent" aggregation: "last_k" field: "amount" window: "lifetime" k: 2 }
  features { name: "recent_gifts" aggregation: "last_k" field: "is_gift" window: "lifetime" k: 2 }
}
"""

# Users: a has whole amounts only (pandas would read 120 as int64), b has an
# empty coupon and no is_gift, c has no coupon (null) and gift false.
EVENTS = """event_id,user_id,order_time,amount,quantity,category,coupon,is_gift
e1,a,2026-11-01T00:00:00Z,120.0,1,x,SAVE,true
e2,a,2026-11-02T00:00:00Z,64.0,2,x,SAVE,true
e3,b,2026-11-01T00:00:00Z,0.5,3,y,"",
e4,c,2026-11-03T00:00:00Z,1e+300,4,z,,false
"""

LABELS = """user_id,ts,label
a,2026-11-05T00:00:00Z,1
b,2026-11-05T00:00:00Z,0
nobody,2026-11-05T00:00:00Z,0
c,2026-11-02T00:00:00Z,1
"""


def fail(msg):
    sys.exit(f"FAIL: {msg}")


def read_csv_typed(path):
    meta = json.load(open(path + ".meta.json"))
    dtypes, lists = {}, []
    for c in meta["columns"]:
        if c["type"].startswith("LIST<"):
            lists.append(c["name"])
        else:
            dtypes[c["name"]] = c["pandas_dtype"]
    df = pd.read_csv(path, dtype=dtypes,
                     converters={n: (lambda s: None if s == "" else json.loads(s))
                                 for n in lists})
    return meta, df


def compare(csv_path, jsonl_path, key):
    meta, csv = read_csv_typed(csv_path)
    js = pd.read_json(jsonl_path, lines=True, dtype=False)
    if len(csv) != len(js):
        fail(f"{csv_path}: {len(csv)} rows vs {len(js)} in JSON Lines")
    checked = 0
    for c in meta["columns"]:
        name, t = c["name"], c["type"]
        if t in ("STRING", ""):
            continue
        a, b = csv[name].tolist(), js[name].tolist()
        for i, (x, y) in enumerate(zip(a, b)):
            x = None if x is pd.NA or (isinstance(x, float) and x != x) else x
            y = None if y is None or (isinstance(y, float) and y != y) else y
            if t == "DOUBLE" and x is not None:
                ok = y is not None and float(x) == float(y)
            elif t == "INT64" and x is not None:
                ok = y is not None and int(x) == int(y)
            elif t == "BOOL" and x is not None:
                ok = y is not None and bool(x) == bool(y)
            else:
                ok = x == y
            if not ok:
                fail(f"{csv_path} row {i} ({csv[key][i]}) column {name} ({t}): "
                     f"CSV {x!r} vs JSON Lines {y!r}")
        want = c["pandas_dtype"]
        got = str(csv[name].dtype)
        if want != "object" and got != want:
            fail(f"{csv_path} column {name}: dtype {got}, meta says {want}")
        checked += 1
    return checked


def main():
    rawfeatd, rawfeat, schemas = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix="rawfeat-types-") as work:
        shutil.copytree(schemas, os.path.join(work, "schemas"))
        with open(os.path.join(work, "schemas", "typed.textproto"), "w") as f:
            f.write(VIEW)
        with open(os.path.join(work, "events.csv"), "w") as f:
            f.write(EVENTS)
        with open(os.path.join(work, "labels.csv"), "w") as f:
            f.write(LABELS)
        port_file = os.path.join(work, "port")
        server = subprocess.Popen(
            [rawfeatd, "--listen=127.0.0.1:0", f"--data_dir={work}/data",
             f"--schemas={work}/schemas", f"--port_file={port_file}"],
            stderr=open(os.path.join(work, "server.log"), "w"))
        try:
            for _ in range(600):
                if os.path.exists(port_file) and open(port_file).read().strip():
                    break
                time.sleep(0.05)
            else:
                fail("rawfeatd did not start")
            cli = [rawfeat, "--server",
                   "127.0.0.1:" + open(port_file).read().strip()]

            def run(*args):
                r = subprocess.run(cli + list(args), cwd=work,
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    fail(f"rawfeat {' '.join(args)}: {r.stderr}")
                return r.stdout

            run("ingest", "--stream", "orders", "events.csv")
            for ext in ("csv", "jsonl"):
                run("snapshot", "--view", "typed", "--as-of", "2026-11-05",
                    "--out", f"snap.{ext}")
                run("join", "--view", "typed", "--labels", "labels.csv",
                    "--time-column", "ts", "--out", f"train.{ext}")
            p = lambda n: os.path.join(work, n)
            checked = compare(p("snap.csv"), p("snap.jsonl"), "entity")
            checked += compare(p("train.csv"), p("train.jsonl"), "user_id")
            # Whole DOUBLEs stay float64; the CSV tells "" from null.
            _, snap = read_csv_typed(p("snap.csv"))
            if str(snap["spend"].dtype) != "float64":
                fail(f"spend dtype {snap['spend'].dtype}")
            text = open(p("snap.csv")).read().splitlines()
            rows = {line.split(",")[0]: line for line in text[1:]}
            if ',"",' not in rows["b"] + ",":
                fail(f"b's empty coupon is not written as \"\": {rows['b']}")
            if ',"",' in rows["c"] + ",":
                fail(f"c's null coupon is written as an empty string: {rows['c']}")
            if "120.0" not in rows["a"] and "184.0" not in rows["a"]:
                fail(f"a's whole DOUBLEs lost their decimal point: {rows['a']}")
            # The replayed CSV reads back the same events.
            run("replay", "--stream", "orders", "--out", "replay.csv")
            if open(p("replay.csv")).read() != EVENTS:
                fail("replay CSV differs from the ingested CSV:\n" +
                     open(p("replay.csv")).read())
            described = run("describe", "typed")
            for want in ("spend                  DOUBLE", "gift                   BOOL",
                         "recent                 LIST<DOUBLE>", "n                      INT64"):
                if want not in described:
                    fail(f"describe lacks '{want}':\n{described}")
            print(f"ok: {checked} typed columns equal between CSV and JSON Lines")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
