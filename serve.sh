#!/usr/bin/env bash
# serve.sh GPU_ID [ARGS ...]: the web page and JSON API over the trained runs (ganstack serve).
#   GPU_ID  a GPU id for the generators (the first of 0,1,2,3), or cpu / -1
#   ARGS    ganstack serve options: --runs output/ --host 127.0.0.1 --port 8000 --max-images 64 ...
# Open http://127.0.0.1:8000/ (the API's schema: /docs). Installs into .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
ids="${1:-cpu}"
[ $# -gt 0 ] && shift
case "$ids" in cpu|-1|cpu:*) device=cpu ;; *) device="cuda:${ids%%,*}" ;; esac
exec "$root/.venv/bin/python" -m ganstack serve --device "$device" "$@"
