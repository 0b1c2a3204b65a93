#!/usr/bin/env bash
# train.sh GPU_IDS [CFG] [--set KEY=VALUE ...]
#   GPU_IDS  0,1,2,3 -> torchrun, one process per GPU (several nodes: set NNODES,
#            NODE_RANK, MASTER_ADDR, MASTER_PORT as for torchrun); one id -> that GPU;
#            cpu or -1 -> CPU; cpu:N -> N CPU processes (gloo), for testing DDP.
#   CFG      YAML config (default cfg/damsm/shapes.yml, whose data is generated when missing)
# With no arguments: the default config on CPU. Installs into .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
py="$root/.venv/bin/python"
ids="${1:-cpu}"
[ $# -gt 0 ] && shift
cfg="cfg/damsm/shapes.yml"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then cfg="$1"; shift; fi
exec "$root/scripts/launch.sh" "$ids" train "$cfg" "$@"
