#!/usr/bin/env bash
# train.sh GPU_IDS [CFG] [--set KEY=VALUE ...]
#   GPU_IDS  0,1,2,3 -> torchrun, one process per GPU (several nodes: set NNODES,
#            NODE_RANK, MASTER_ADDR, MASTER_PORT as for torchrun); one id -> that GPU;
#            cpu or -1 -> CPU; cpu:N -> N CPU processes (gloo), for testing DDP.
#   CFG      YAML config; data/shapes* is generated when a config needs it and it is missing
# Without CFG: the default job (scripts/default_job.sh) on GPU_IDS (default cpu): DAMSM on the
# single shapes level, AttnGAN on it, a gallery and an eval report, in GANSTACK_JOB_MINUTES (30)
# from here. Installs into .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
export GANSTACK_JOB_START="${GANSTACK_JOB_START:-$(date +%s)}"   # the default job's clock starts with the install
"$root/scripts/bootstrap.sh"
py="$root/.venv/bin/python"
ids="${1:-cpu}"
[ $# -gt 0 ] && shift
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then exec "$root/scripts/default_job.sh" "$ids" "$@"; fi
cfg="$1"; shift
exec "$root/scripts/launch.sh" "$ids" train "$cfg" "$@"
