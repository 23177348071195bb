"""plotlib.py — what the postnas plot scripts share: error exits, reading a
postnas result JSON, JSON nulls as NaN, and atomic PNG writes (temp file +
rename, like everything postnas writes). Imported by plot_ablation.py and
plot_hw_search.py (scripts/ is on sys.path when they run)."""
import json
import os
import sys

PROG = os.path.splitext(os.path.basename(sys.argv[0]))[0] if sys.argv and sys.argv[0] else "plot"


def die(msg, code=2):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def load_result(path, fmt, what):
    """The JSON object at path, whose "format" must be fmt (what names it in errors)."""
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except OSError as e:
        die(f"{path}: cannot read: {e.strerror}")
    except json.JSONDecodeError as e:
        die(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}")
    if not isinstance(r, dict) or r.get("format") != fmt:
        die(f"{path}: expected a {what} (\"format\": \"{fmt}\")")
    return r


def num(x):
    # JSON null stands for a number that was not measured (or not finite)
    return float("nan") if x is None else float(x)


def save_atomic(fig, path):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        die(f"{path}: cannot write: {e.strerror}")
