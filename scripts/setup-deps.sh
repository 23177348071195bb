#!/usr/bin/env bash
# setup-deps.sh — install postnas's build dependencies on Debian/Ubuntu (as root).
# Idempotent: skips apt when everything is already there.
set -euo pipefail
PKGS="build-essential cmake pkg-config libyaml-dev libjansson-dev libopenblas-dev libopenblas-openmp-dev libhdf5-dev
      libpcre2-dev libopenmpi-dev openmpi-bin python3 python3-matplotlib"
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "[setup] installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null
fi
# The plots (ablation.png, hw_search.png, the placement plots) run the python3 found
# on PATH. Where that is not Debian's (pyenv, conda, a venv), python3-matplotlib
# does not reach it: install matplotlib into that interpreter with pip.
if ! python3 -c 'import matplotlib' >/dev/null 2>&1; then
    echo "[setup] $(command -v python3) has no matplotlib: pip install matplotlib"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore matplotlib
fi
echo "[setup] dependencies present"
