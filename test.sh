#!/usr/bin/env bash
# test.sh [PYTEST ARGS...]: install into .venv if needed, then run the test suite (CPU only).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
exec "$root/.venv/bin/python" -m pytest -q "$@"
