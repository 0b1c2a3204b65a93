#!/usr/bin/env bash
# launch.sh GPU_IDS COMMAND CFG [ARGS...]: run `ganstack COMMAND CFG ARGS` on the
# devices GPU_IDS names (see train.sh); shared by train.sh and sample.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$root/.venv/bin/python"
ids="$1"; command="$2"; shift 2
torchrun_args() {
  if [ -n "${NNODES:-}" ] && [ "$NNODES" != 1 ]; then
    echo --nnodes "$NNODES" --node_rank "${NODE_RANK:-0}" --master_addr "${MASTER_ADDR:?set MASTER_ADDR for multi-node}" --master_port "${MASTER_PORT:-29500}"
  else
    echo --standalone
  fi
}
case "$ids" in
  cpu|-1)
    exec "$py" -m ganstack "$command" "$@" --device cpu ;;
  cpu:*)
    n="${ids#cpu:}"
    exec "$py" -m torch.distributed.run $(torchrun_args) --nproc_per_node "$n" -m ganstack "$command" "$@" --device cpu ;;
  *)
    [[ "$ids" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "train.sh: GPU_IDS must be like 0 or 0,1,2,3, or cpu / -1 / cpu:N; got '$ids'" >&2; exit 2; }
    export CUDA_VISIBLE_DEVICES="$ids"
    IFS=, read -ra list <<< "$ids"
    if [ "${#list[@]}" -eq 1 ] && { [ -z "${NNODES:-}" ] || [ "$NNODES" = 1 ]; }; then
      exec "$py" -m ganstack "$command" "$@" --device cuda
    fi
    exec "$py" -m torch.distributed.run $(torchrun_args) --nproc_per_node "${#list[@]}" -m ganstack "$command" "$@" --device cuda ;;
esac
