#!/usr/bin/env python3
"""plot_placement.py — plots of a PostNAS placement-search trace (search/trace.h JSON).

Writes two PNGs:
  OUT_DIR/placement_importance.png  heatmap of per-task single-layer importance
      (tasks x layers, the paper's Fig. 5a). Tasks score in different units
      (-NLL, accuracy), so each row is coloured by its gain normalised to the
      task's own baselines, (s_i - s_all_linear) / |s_all_attention - s_all_linear|
      (0 = as good as all-linear, 1 = as good as all-attention); each cell is
      annotated with the raw score.
  OUT_DIR/placement_best_vs_k.png   best objective vs number of full-attention
      layers k, one line per search (per-task searches on their raw scores,
      the combined search on its normalised mean), the k = 0 point being the
      search's all-linear base score.

Usage: python3 scripts/plot_placement.py TRACE.json [OUT_DIR]   (default: the trace's folder)
Needs matplotlib (apt install python3-matplotlib, or pip install matplotlib).
"""
import json
import math
import os
import sys


def die(msg, code=2):
    print(f"plot_placement: error: {msg}", file=sys.stderr)
    sys.exit(code)


def load_trace(path):
    try:
        with open(path, encoding="utf-8") as f:
            t = json.load(f)
    except OSError as e:
        die(f"{path}: cannot read: {e.strerror}")
    except json.JSONDecodeError as e:
        die(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}")
    if not isinstance(t, dict) or t.get("format") != "postnas-placement-trace":
        die(f"{path}: expected a postnas placement trace (\"format\": \"postnas-placement-trace\")")
    return t


def save_atomic(fig, path):
    # like everything postnas writes: temp file, then rename over the target
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        die(f"{path}: cannot write: {e.strerror}")


def num(x):
    # JSON null stands for a non-finite score
    return float("nan") if x is None else float(x)


def plot_importance(plt, t, out):
    imp = t.get("importance")
    if not imp:
        return None
    tasks = t["tasks"]
    n_layers = t["n_layers"]
    lin = [num(x) for x in t["all_linear"]]
    att = [num(x) for x in t["all_attention"]]
    raw = [[num(x) for x in row] for row in imp]
    norm = []
    for ti, row in enumerate(raw):
        span = abs(att[ti] - lin[ti])
        norm.append([(v - lin[ti]) / span if span > 1e-12 else 0.0 for v in row])
    w = max(6.0, 0.55 * n_layers + 2.0)
    h = max(2.5, 0.6 * len(tasks) + 1.8)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(norm, aspect="auto", cmap="viridis")
    ax.set_xticks(range(n_layers))
    ax.set_xticklabels([str(i) for i in range(n_layers)])
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels(tasks)
    ax.set_xlabel("layer with full attention (all others linear)")
    ax.set_title("single-layer importance\n(colour: gain normalised per task; text: raw score)", fontsize=10)
    finite = [v for row in norm for v in row if math.isfinite(v)]
    mid = (min(finite) + max(finite)) / 2 if finite else 0.0
    for ti, row in enumerate(raw):
        for li, v in enumerate(row):
            colour = "black" if math.isfinite(norm[ti][li]) and norm[ti][li] > mid else "white"
            ax.text(li, ti, f"{v:.3g}", ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, label="(s - s_lin) / |s_attn - s_lin|")
    fig.tight_layout()
    path = os.path.join(out, "placement_importance.png")
    save_atomic(fig, path)
    plt.close(fig)
    return path


def plot_best_vs_k(plt, t, out):
    searches = [s for s in t.get("searches", []) if s.get("kind") == "full" and s.get("best")]
    if not searches:
        return None
    raw = [s for s in searches if not s.get("normalised")]
    comb = [s for s in searches if s.get("normalised")]
    panels = [p for p in ((raw, "best raw score (per task)"), (comb, "best normalised score (combined)")) if p[0]]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.0), squeeze=False)
    for ax, (group, title) in zip(axes[0], panels):
        for s in group:
            ks = [0] + [b["k"] for b in s["best"]]
            ys = [num(s.get("base_score"))] + [num(b["score"]) for b in s["best"]]
            ax.plot(ks, ys, marker="o", label=s["name"])
            last = s["best"][-1]
            ax.annotate("{" + ",".join(str(m) for m in last["members"]) + "}", (ks[-1], ys[-1]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xticks(range(0, max(b["k"] for s in group for b in s["best"]) + 1))
        ax.set_xlabel("full-attention layers k")
        ax.set_ylabel("score (higher is better)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "placement_best_vs_k.png")
    save_atomic(fig, path)
    plt.close(fig)
    return path


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help") or len(argv) > 3:
        print(__doc__.strip(), file=sys.stderr if len(argv) < 2 else sys.stdout)
        sys.exit(0 if len(argv) >= 2 and argv[1] in ("-h", "--help") else 2)
    trace_path = argv[1]
    out = argv[2] if len(argv) == 3 else (os.path.dirname(os.path.abspath(trace_path)))
    t = load_trace(trace_path)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed; install it with 'apt install python3-matplotlib' "
            "or 'pip install matplotlib'", code=1)
    os.makedirs(out, exist_ok=True)
    written = [p for p in (plot_importance(plt, t, out), plot_best_vs_k(plt, t, out)) if p]
    if not written:
        die(f"{trace_path}: the trace has neither an importance matrix nor a full-attention search to plot")
    for p in written:
        print(p)


if __name__ == "__main__":
    main(sys.argv)
