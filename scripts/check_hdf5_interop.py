#!/usr/bin/env python3
"""check_hdf5_interop.py — postnas token files <-> h5py, both directions.

1. Files written by h5py (uint16, big-endian uint32, eos_id as a dataset or a
   root-group attribute) are read by `postnas data info` with the right dtype,
   token count and eos_id; an int64 `tokens` dataset is refused with exit 2.
2. `postnas data synth` output is read by h5py: `tokens` is 1-D uint16 with the
   length asked for, attrs eos_id and vocab_size match synth.json, and every
   task JSONL line parses with the ids below the vocab size.

Usage: scripts/check_hdf5_interop.py [--bin PATH]  (default $POSTNAS_BIN or build/postnas)
Needs h5py and numpy. Without them it prints "SKIPPED: ..." and exits 0 — the
C test (tests/unit/test_datasets.c) covers interop through the HDF5 C library
and h5dump in CI; this script is the extra check against the Python stack.
Exit 0 = all checks passed (or skipped, as printed), 1 = a check failed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:  # honest skip: say what is missing
    print(f"SKIPPED: {e.name} is not installed (pip install h5py numpy)")
    sys.exit(0)

failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures += 1


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("POSTNAS_BIN", "build/postnas"))
    args = ap.parse_args()
    pn = args.bin
    probe = run([pn, "data", "--help"])
    if probe.returncode != 0:
        print(f"FAIL '{pn} data --help' exited {probe.returncode}: {probe.stderr.strip()}")
        return 1

    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        # h5py -> postnas
        t16 = rng.integers(0, 65536, size=1000, dtype=np.uint16)
        with h5py.File(f"{d}/a.h5", "w") as f:
            ds = f.create_dataset("tokens", data=t16)
            ds.attrs["eos_id"] = np.int64(50256)
        r = run([pn, "data", "info", f"{d}/a.h5"])
        check(r.returncode == 0 and "uint16, 1000 tokens, eos_id 50256" in r.stdout,
              f"h5py uint16 file read by postnas: {r.stdout.strip() or r.stderr.strip()}")

        t32 = rng.integers(0, 2**32, size=777, dtype=np.uint64).astype(">u4")
        with h5py.File(f"{d}/b.h5", "w") as f:
            f.create_dataset("tokens", data=t32)
            f.attrs["eos_id"] = np.int32(2)
        r = run([pn, "data", "info", f"{d}/b.h5"])
        check(r.returncode == 0 and "uint32, 777 tokens, eos_id 2" in r.stdout,
              f"h5py big-endian uint32 file, root eos_id: {r.stdout.strip() or r.stderr.strip()}")
        # the largest id must survive: a vocab check one below it must fail, at it must pass
        top = int(t32.max())
        r = run([pn, "data", "info", "--vocab-size", str(top), f"{d}/b.h5"])
        check(r.returncode == 2 and f"token id {top}" in r.stderr, "uint32 ids read exactly (vocab check at the max id)")

        with h5py.File(f"{d}/c.h5", "w") as f:
            f.create_dataset("tokens", data=np.arange(10, dtype=np.int64))
        r = run([pn, "data", "info", f"{d}/c.h5"])
        check(r.returncode == 2 and "dtype int64; expected uint16 or uint32" in r.stderr,
              f"int64 tokens refused with exit 2: {r.stderr.strip()}")

        # postnas -> h5py
        out = f"{d}/syn"
        r = run([pn, "data", "synth", "--out", out, "--seed", "5", "--train-tokens", "12345", "--valid-tokens", "999",
                 "--examples", "20"])
        check(r.returncode == 0, f"postnas data synth: {r.stderr.strip()}")
        if r.returncode == 0:
            meta = json.load(open(f"{out}/synth.json"))
            for name, n in (("train.h5", 12345), ("valid.h5", 999)):
                with h5py.File(f"{out}/{name}", "r") as f:
                    ds = f["tokens"]
                    check(ds.ndim == 1 and ds.dtype == np.uint16 and ds.shape[0] == n,
                          f"{name}: 1-D uint16 of {n} (got {ds.dtype} {ds.shape})")
                    check(int(ds.attrs["eos_id"]) == meta["layout"]["special"]["EOS"]
                          and int(ds.attrs["vocab_size"]) == meta["vocab_size"],
                          f"{name}: attrs eos_id/vocab_size = {dict(ds.attrs)}")
                    check(int(ds[:].max()) < meta["vocab_size"], f"{name}: ids below vocab_size")
            for task, keys in (("retrieval", ("prompt_ids", "answer_ids")), ("math", ("prompt_ids", "answer_ids")),
                               ("knowledge", ("context_ids", "choices_ids", "answer"))):
                lines = [json.loads(x) for x in open(f"{out}/{task}.jsonl")]
                check(len(lines) == 20 and all(all(k in x for k in keys) for x in lines),
                      f"{task}.jsonl: 20 examples with {keys}")
    print(f"{'all checks passed' if failures == 0 else f'{failures} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
