#!/usr/bin/env bash
# Idempotent set-up: the system library libsndfile1 (needed by fairseq2n), a virtualenv,
# and the packages at the exact versions of constraints.txt. Safe to run any number of times;
# a second run only checks.
#
#   scripts/setup.sh [EXTRAS]        e.g. scripts/setup.sh test   (extras: test, figures, bench)
#
# AAPE_VENV picks the virtualenv folder (default: .venv in the checkout).
# PYTHON picks the interpreter that creates it (default: python3, 3.10-3.12).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${AAPE_VENV:-$repo/.venv}
python=${PYTHON:-python3}
extras=${1:-}

say() { printf '[setup] %s\n' "$*" >&2; }

# 1. libsndfile1: `import fairseq2` fails without it.
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libsndfile\.so\.1 '; then
    if [ "$(id -u)" = 0 ]; then
        say "installing the system library libsndfile1 (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q libsndfile1 >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q libsndfile1 >/dev/null; }
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        say "installing the system library libsndfile1 (sudo apt-get)"
        sudo apt-get install -y -q libsndfile1 >/dev/null 2>&1 \
            || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q libsndfile1 >/dev/null; }
    else
        say "fairseq2 needs the system library libsndfile1, which is missing, and this"
        say "user cannot install system packages. Ask an administrator to run:"
        say "    sudo apt-get install -y libsndfile1"
        say "(or, with conda: conda install -c conda-forge libsndfile), then run this again."
        exit 1
    fi
fi

# 2. The virtualenv.
if [ ! -x "$venv/bin/python" ]; then
    "$python" - <<'PY' || { say "need Python 3.10-3.12 (set PYTHON=...)"; exit 1; }
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
PY
    say "creating the virtualenv $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi

# 3. The pinned packages, re-installed only when pyproject.toml, constraints.txt or the
#    checkout folder changed since the last successful run, or when an extra is asked for the
#    first time.
stamp="$venv/.aape-setup"
key="$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -c1-16) $repo"
have_key=$(sed -n 1p "$stamp" 2>/dev/null || true)
have_extras=$(sed -n 2p "$stamp" 2>/dev/null || true)
[ "$have_key" = "$key" ] || have_extras=""
need=0
[ "$have_key" = "$key" ] || need=1
for e in ${extras//,/ }; do
    case ",$have_extras," in *",$e,"*) ;; *) need=1; have_extras="${have_extras:+$have_extras,}$e" ;; esac
done
if [ "$need" = 1 ]; then
    spec="$repo"
    [ -n "$have_extras" ] && spec="$repo[$have_extras]"
    say "installing aape-fairseq2${have_extras:+[$have_extras]} and its pinned dependencies into $venv"
    say "(the first time this downloads several GB: torch 2.9.1 from PyPI is the CUDA build)"
    "$venv/bin/python" -m pip install --progress-bar off -q -c "$repo/constraints.txt" -e "$spec"
    printf '%s\n%s\n' "$key" "$have_extras" > "$stamp"
fi
"$venv/bin/python" -c "import fairseq2, aape_plugin" || { say "import check failed"; exit 1; }
say "ready: $venv"
