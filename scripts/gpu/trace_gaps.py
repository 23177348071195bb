#!/usr/bin/env python3
"""trace_gaps.py — where the device idles inside one training step, from a trace written by
scripts/gpu/cupti_trace.c (lines K|M|A start end correlation name, ns).

The step analysed is the last one: from the end of the previous step's AdamW launches to
the end of its own. Device activities are merged into busy intervals; each idle gap is
put down to the host when the runtime call that launched the next activity began after
the device had gone idle (the launch was late), else to the device side (launch latency,
a dependency). Prints the totals, the largest gaps with the kernels around them, and the
host's runtime calls by total time."""
import argparse
import collections
import re


def short(name, n=70):
    m = re.match(r"(?:void )?([A-Za-z_0-9:]+)", name)
    s = m.group(1) if m else name
    return s[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("trace")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    dev, api = [], {}
    api_all = []
    with open(a.trace, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 4)
            if len(parts) < 5:
                continue
            kind, s, e, corr, name = parts
            s, e, corr = int(s), int(e), int(corr)
            if kind in ("K", "M"):
                dev.append((s, e, corr, name))
            elif kind == "A":
                if corr not in api or "Launch" in name:  # the launch call, runtime or driver
                    api[corr] = (s, e, name)
                api_all.append((s, e, name))
    dev.sort()
    ad = [i for i, d in enumerate(dev) if "adamw" in d[3]]
    groups = []
    for i in ad:
        if groups and i - groups[-1][-1] <= 3:
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(groups) < 2:
        raise SystemExit("trace_gaps: fewer than two AdamW groups (run at least two steps)")
    seg = dev[groups[-2][-1] + 1: groups[-1][-1] + 1]
    w0, w1 = seg[0][0], max(d[1] for d in seg)
    busy = idle_host = idle_dev = 0
    gaps = []
    cur_s, cur_e, prev = seg[0][0], seg[0][1], seg[0]
    for d in seg[1:]:
        if d[0] > cur_e:
            busy += cur_e - cur_s
            g = d[0] - cur_e
            launch = api.get(d[2])
            late = launch is not None and launch[0] > cur_e
            if late:
                idle_host += g
            else:
                idle_dev += g
            gaps.append((g, late, prev[3], d[3], launch[2] if launch else "?"))
            cur_s, cur_e = d[0], d[1]
        else:
            cur_e = max(cur_e, d[1])
        prev = d
    busy += cur_e - cur_s
    win = w1 - w0
    print(f"last step: {len(seg)} device activities, window {win/1e6:.2f} ms, busy {busy/1e6:.2f} ms, "
          f"idle {(win-busy)/1e6:.2f} ms ({100*(win-busy)/win:.1f}%): launch late {idle_host/1e6:.2f} ms, "
          f"launched in time {idle_dev/1e6:.2f} ms")
    buckets = collections.Counter()
    for g in gaps:
        b = "<2us" if g[0] < 2000 else "2-10us" if g[0] < 10000 else "10-100us" if g[0] < 100000 else ">=100us"
        buckets[b] += g[0]
    print("idle by gap size (ms):", {k: round(v / 1e6, 2) for k, v in sorted(buckets.items())},
          "gaps:", len(gaps))
    print(f"largest gaps (of {len(gaps)}):")
    for g in sorted(gaps, reverse=True)[: a.top]:
        print(f"  {g[0]/1e3:9.1f} us {'host-late' if g[1] else 'in-time  '}  {short(g[2], 40):40s} -> "
              f"{short(g[3], 40):40s} ({g[4]})")
    tot, cnt = collections.Counter(), collections.Counter()
    for s, e, n in api_all:
        if w0 <= s <= w1:
            tot[n] += e - s
            cnt[n] += 1
    print("host runtime calls in the window (ms, calls):")
    for n, t in tot.most_common(12):
        print(f"  {t/1e6:9.2f} {cnt[n]:7d}  {n}")
    kt = collections.Counter()
    for d in seg:
        kt[short(d[3])] += d[1] - d[0]
    print("device time by kernel (ms):")
    for n, t in kt.most_common(15):
        print(f"  {t/1e6:9.2f}  {n}")


if __name__ == "__main__":
    main()
