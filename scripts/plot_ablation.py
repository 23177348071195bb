#!/usr/bin/env python3
"""plot_ablation.py — one PNG of a PostNAS block ablation (search/ablation.h JSON).

Three panels, one colour per block (the teacher, all full attention, in grey):
  (a) accuracy per task, grouped bars;
  (b) mean task accuracy vs measured CPU decode tokens/s (the trade-off the
      ablation is about), each point labelled with its block;
  (c) decode-state bytes per sequence at the ablation's context L (MiB, linear
      scale, so the sizes compare at a glance), stacked by kind: attention KV,
      SWA KV, linear recurrent state; each bar labelled with its total.

Usage: python3 scripts/plot_ablation.py ABLATION.json [OUT.png]   (default: next to the JSON)
Needs matplotlib (apt install python3-matplotlib, or pip install matplotlib).
Exit codes: 0 written; 2 bad arguments or input; 3 matplotlib missing.
"""
import math
import os
import sys

from plotlib import die, load_result, num, save_atomic


def load(path):
    a = load_result(path, "postnas-ablation", "postnas ablation result")
    if not a.get("rows") or not a.get("tasks"):
        die(f"{path}: no rows or no tasks to plot")
    return a


def fmt_bytes(b):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.2f} {unit}"
        b /= 1024


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help") or len(argv) > 3:
        print(__doc__.strip(), file=sys.stderr if len(argv) < 2 else sys.stdout)
        sys.exit(0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2)
    src = argv[1]
    out = argv[2] if len(argv) == 3 else os.path.join(os.path.dirname(os.path.abspath(src)), "ablation.png")
    a = load(src)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed; install it with 'apt install python3-matplotlib' "
            "or 'pip install matplotlib'", code=3)

    rows = a["rows"]
    tasks = [t["name"] for t in a["tasks"]]
    names = ["teacher" if r.get("is_teacher") else r["block"] for r in rows]
    cmap = plt.get_cmap("tab10")
    colours = []
    k = 0
    for r in rows:
        if r.get("is_teacher"):
            colours.append("0.55")
        else:
            colours.append(cmap(k % 10))
            k += 1

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1.5, 1.1, 1.1]})

    # (a) accuracy per task
    ax = axes[0]
    n = len(rows)
    width = 0.8 / n
    for i, r in enumerate(rows):
        xs = [t + (i - (n - 1) / 2) * width for t in range(len(tasks))]
        ys = [num(r["accuracy"].get(t)) for t in tasks]
        ax.bar(xs, [0 if math.isnan(y) else y for y in ys], width, color=colours[i], label=names[i])
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title("(a) accuracy per task")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)

    # (b) mean accuracy vs decode throughput
    ax = axes[1]
    for i, r in enumerate(rows):
        x, y = num(r.get("decode_tokens_per_s")), num(r.get("mean_accuracy"))
        if math.isnan(x) or math.isnan(y):
            continue
        ax.scatter([x], [y], color=colours[i], s=40, zorder=3)
        # alternate above / below so neighbouring labels do not print over each other
        ax.annotate(names[i], (x, y), textcoords="offset points", xytext=(4, 4 if i % 2 else -11), fontsize=8)
    tp = a.get("throughput", {})
    ax.set_xlabel(f"CPU decode tokens/s (batch {tp.get('batch', '?')}, {a.get('machine', {}).get('threads', '?')} threads)")
    ax.set_ylabel(f"mean accuracy over {len(tasks)} tasks")
    ax.set_title("(b) accuracy vs measured decode throughput")
    ax.grid(alpha=0.3)

    # (c) state bytes per sequence at L, stacked by kind
    ax = axes[2]
    parts = (("state_bytes_attn", "attention KV (bf16)", "#4c72b0"),
             ("state_bytes_swa", "SWA KV (bf16)", "#55a868"),
             ("state_bytes_linear", "recurrent state (fp32)", "#c44e52"))
    mib = 1024.0 * 1024.0
    bottom = [0.0] * n
    for key, label, colour in parts:
        vals = [num(r.get(key)) for r in rows]
        vals = [0.0 if math.isnan(v) else v for v in vals]
        if not any(vals):
            continue
        ax.bar(range(n), [v / mib for v in vals], 0.6, bottom=[b / mib for b in bottom], color=colour, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, tot in enumerate(bottom):
        ax.text(i, tot / mib, fmt_bytes(tot), ha="center", va="bottom", fontsize=7, rotation=90 if n > 6 else 0)
    ax.set_ylim(0, max(bottom) / mib * 1.25 if max(bottom) > 0 else 1)
    ax.set_xticks(range(n))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("MiB per sequence")
    ax.set_title(f"(c) decode state at context L = {a.get('context', '?')}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)

    steps = a.get("train", {}).get("steps", "?")
    fig.suptitle(f"Block ablation: {a.get('run', '')} — placement {a.get('placement', {}).get('text', '')}, "
                 f"{steps} distillation steps per block", fontsize=10)
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    save_atomic(fig, out)
    plt.close(fig)
    print(out)


if __name__ == "__main__":
    main(sys.argv)
