#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and installs
# ganstack into it in editable mode. Safe to call before every command: it only
# reinstalls when requirements.txt or pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GANSTACK_VENV:-$root/.venv}"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python3.11 python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; break; fi
  done
fi
[ -n "$py" ] || { echo "bootstrap: no python3 found; install Python 3.11 and retry" >&2; exit 1; }
stamp="$venv/.ganstack-installed"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating virtual environment in $venv" >&2
  "$py" -m venv "$venv"
fi
echo "bootstrap: installing pinned dependencies (first run takes a minute or two)" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e "$root" 2> >(grep -v "^WARNING: Location" >&2)
echo "$want" > "$stamp"
