#!/usr/bin/env bash
# test.sh [PYTEST ARGS...]: install into .venv if needed, then run the test suite (CPU only).
# The suite runs on every core (pytest-xdist: -n auto, a test file per worker so its fixtures are
# built once) with one torch thread per worker; `./test.sh -n 0 ...` runs it in this process.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$root/.venv/bin/python" -m pytest -q -n auto --dist loadfile "$@"
