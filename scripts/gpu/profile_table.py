#!/usr/bin/env python3
"""profile_table.py — sum an ncu --csv export (metric gpu__time_duration.sum, base units)
by kernel name and print the kernels by total time, with the cuBLASLt GEMM share."""
import argparse
import collections
import csv
import datetime
import io
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("csv")
    ap.add_argument("--title", default="")
    ap.add_argument("--top", type=int, default=45)
    a = ap.parse_args()
    text = open(a.csv, encoding="utf-8", errors="replace").read()
    start = text.find('"ID"')  # ncu prints its own log lines before the table
    if start < 0:
        sys.exit(f"{a.csv}: no ncu CSV header (\"ID\", ...) found")
    tot = collections.defaultdict(float)
    calls = collections.Counter()
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"].split("(")[0].strip()
        tot[name] += float(row["Metric Value"].replace(",", "")) * 1e-6  # ns -> ms
        calls[name] += 1
    s = sum(tot.values())
    gemm = sum(v for k, v in tot.items() if k.startswith("nvjet") or "gemm" in k.lower())
    day = datetime.date.today().isoformat()
    print(f"# One supernet step on the GPU, per-kernel device time (ncu gpu__time_duration.sum), {day}")
    if a.title:
        print(f"# {a.title}")
    print(f"# {sum(calls.values())} kernels, sum {s:.1f} ms; cuBLASLt GEMMs {gemm:.1f} ms ({100 * gemm / s:.1f}%)")
    print("#      ms      %    calls  kernel")
    for k, v in sorted(tot.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"{v:9.2f} {100 * v / s:6.1f} {calls[k]:8d}  {k}")


if __name__ == "__main__":
    main()
