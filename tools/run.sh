#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv (pinned set from constraints.txt)
# on first use, then runs what is asked:
#   bash tools/run.sh demo [demo options]   the pipeline on a generated phantom
#   bash tools/run.sh test [paths] [pytest options]
#                                           the paths given, else the whole suite (pipeline +
#                                           MRML tiers); e.g. test -m "not slow" (the fast lane)
#   bash tools/run.sh <any uncertaintyseg subcommand ...>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="${UNCERTAINTYSEG_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/uncertaintyseg" ] || [ constraints.txt -nt "$venv/.installed" ] \
        || [ pyproject.toml -nt "$venv/.installed" ]; then
    echo "setting up $venv (first run: a few minutes)" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # torch first and pinned: a bare torch requirement would pull a multi-GB CUDA build.
    "$venv/bin/pip" install --quiet -c constraints.txt torch
    "$venv/bin/pip" install --quiet -c constraints.txt -e ".[scene,test,evaluate,cohort,cpu]"
    touch "$venv/.installed"
fi

# nnU-Net's data augmentation spawns workers: two is what these 2-core machines take.
export nnUNet_n_proc_DA="${nnUNet_n_proc_DA:-2}"
command="${1:-demo}"
shift || true
case "$command" in
    test)
        # Only the paths given (a file, a folder, file::test); options alone (-q, -m "not
        # slow") run the whole suite. A path is an argument that names an existing file or
        # folder: option values such as "not slow" are not.
        targets=(Testing)
        for arg in "$@"; do
            if [ -e "${arg%%::*}" ]; then targets=(); break; fi
        done
        exec "$venv/bin/python" -m pytest ${targets[@]+"${targets[@]}"} "$@" ;;
    *) exec "$venv/bin/uncertaintyseg" "$command" "$@" ;;
esac
