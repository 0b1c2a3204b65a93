#!/usr/bin/env bash
# sample.sh GPU_IDS [CFG] [ARGS ...]: images and an index.html gallery from a trained generator.
#   GPU_IDS  a GPU id (the first of 0,1,2,3 is used; sampling is one process) or cpu / -1
#   CFG      YAML config of the run (default cfg/attngan/shapes_single.yml, the default job)
#   ARGS     ganstack sample options: --caption "a red circle at the top" (repeatable),
#            --captions FILE, --from-split test, --n 8, --seed 0, --truncation 1.0,
#            --interpolate "caption A" "caption B", --attention (AttnGAN), --ckpt PATH, --set KEY=VALUE ...
# Writes output/<run>/samples/index.html. Installs into .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
ids="${1:-cpu}"
[ $# -gt 0 ] && shift
case "$ids" in cpu|-1|cpu:*) ids=cpu ;; *) ids="${ids%%,*}" ;; esac
cfg="cfg/attngan/shapes_single.yml"
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then cfg="$1"; shift; fi
exec "$root/scripts/launch.sh" "$ids" sample "$cfg" "$@"
