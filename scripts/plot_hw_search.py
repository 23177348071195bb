#!/usr/bin/env python3
"""plot_hw_search.py — throughput vs accuracy of a PostNAS hardware-aware search.

Reads the hw_search.json that `postnas search hw` writes (search/hw_search.h) and
draws one point per candidate within the cache+state budget: decode tokens/s on
the x axis, mean task accuracy on the y axis, each labelled with its
(heads, K, V[, conv]). The band of throughputs within the tolerance of the best
is shaded; the chosen design is marked with a star. Candidates without a finite
throughput or accuracy are left out (and counted in the title).

Usage: python3 scripts/plot_hw_search.py HW_SEARCH.json [OUT.png]
       (default OUT: hw_search.png next to the JSON)
Exit codes: 0 written; 2 bad input; 3 matplotlib is not installed
(apt install python3-matplotlib, or pip install matplotlib).
"""
import math
import os
import sys

from plotlib import die, load_result, num, save_atomic


def load(path):
    r = load_result(path, "postnas-hw-search", "postnas hardware-search result")
    if not isinstance(r.get("candidates"), list):
        die(f"{path}: key \"candidates\": expected a list")
    return r


def label(c):
    s = f"H{c['heads']} K{c['key_dim']} V{c['value_dim']}"
    if c.get("conv_size"):
        s += f" W{c['conv_size']}"
    return s


def main():
    if len(sys.argv) not in (2, 3):
        die("usage: plot_hw_search.py HW_SEARCH.json [OUT.png]")
    path = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(os.path.dirname(path) or ".", "hw_search.png")
    r = load(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed (apt install python3-matplotlib, or pip install matplotlib)", 3)

    pts, skipped = [], 0
    for c in r["candidates"]:
        if not c.get("kept"):
            continue
        x, y = num(c.get("decode_tokens_per_s")), num(c.get("accuracy"))
        if math.isfinite(x) and math.isfinite(y):
            pts.append((x, y, c))
        else:
            skipped += 1

    fig, ax = plt.subplots(figsize=(7.5, 5))
    best = num(r.get("best_tokens_per_s"))
    tol = num(r.get("throughput_tolerance"))
    if math.isfinite(best) and math.isfinite(tol):
        ax.axvspan((1 - tol) * best, best, color="tab:green", alpha=0.12,
                   label=f"within {100 * tol:g}% of the best throughput")
    for k, (x, y, c) in enumerate(pts):
        chosen = bool(c.get("chosen"))
        ax.scatter([x], [y], s=160 if chosen else 40, marker="*" if chosen else "o",
                   color="tab:red" if chosen else "tab:blue", zorder=3,
                   label="chosen" if chosen else None)
        # staggered offsets: designs of equal accuracy and speed would print over each other
        ax.annotate(label(c), (x, y), textcoords="offset points", xytext=(5, 4 - 11 * (k % 3)), fontsize=8)
    dev = r.get("device", {})
    ax.set_xlabel(f"decode tokens/s ({dev.get('kind', '?')}, batch {r.get('throughput', {}).get('batch', '?')}, "
                  f"{r.get('throughput', {}).get('prefill_tokens', '?')} prompt tokens)")
    ax.set_ylabel("mean task accuracy")
    budget = r.get("budget_bytes")
    title = f"{r.get('block', '?')}: heads / key / value search"
    if isinstance(budget, (int, float)):
        title += f" at <= {budget / 1e6:.3g} MB cache+state (L = {r.get('context', '?')})"
    if skipped:
        title += f"\n({skipped} candidate(s) without a finite throughput or accuracy not shown)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if pts or math.isfinite(best):
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    save_atomic(fig, out)


if __name__ == "__main__":
    main()
