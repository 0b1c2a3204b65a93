#!/usr/bin/env bash
# default_job.sh GPU_IDS [--set KEY=VALUE ...]: what `train.sh` runs without a config.
#   1. data/shapes_single (the single level: one object, plain background) is generated when
#      missing (by the first training command);
#   2. DAMSM pretrains (cfg/damsm/shapes_single.yml, up to its 45 epochs);
#   3. AttnGAN trains on it (cfg/attngan/shapes_single.yml; the --set overrides go here);
#   4. a sample gallery with attention strips for captions it never saw, then an eval report.
# The job fills GANSTACK_JOB_MINUTES (30) of wall clock from train.sh's start on any machine: of
# what is left after the install and a reserve for step 4 (GANSTACK_JOB_RESERVE, 4 minutes: twice
# the 2 it took on a 2-core AMD EPYC, judge training included), DAMSM gets up to 60 % and AttnGAN
# the rest, as TRAIN.MAX_MINUTES (the curves: on 2 CPU cores a 45-epoch encoder and a short GAN run
# draw more shapes than a 10-epoch encoder and a long one; README). A CPU with native bf16 finishes
# the 45 epochs early, and AttnGAN gets the minutes left.
# Each stage's minutes are written to output/default_job_plan.txt when first decided, so running
# the job again resumes every step to the same plan; delete the file to plan anew.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ids="$1"; shift
one="${ids%%,*}"; [[ "$one" == cpu:* ]] && one=cpu   # sampling and eval run in one process
total="${GANSTACK_JOB_MINUTES:-30}"
reserve="${GANSTACK_JOB_RESERVE:-4}"
start="${GANSTACK_JOB_START:-$(date +%s)}"
for name in GANSTACK_JOB_MINUTES GANSTACK_JOB_RESERVE; do
  value="${!name:-0}"
  [[ "$value" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "default job: $name=$value is not a number of minutes (e.g. 30)" >&2; exit 2; }
done
plan="output/default_job_plan.txt"
mkdir -p output

minutes_left() {  # of the job's wall clock, less the reserve; at least one per stage
  awk -v t="$total" -v r="$reserve" -v s="$start" -v now="$(date +%s)" \
    'BEGIN { m = t - r - (now - s) / 60; printf "%.1f", (m > 1 ? m : 1) }'
}
stage_minutes() {  # stage_minutes NAME FRACTION: NAME's training minutes in the plan, decided now if new
  local line
  line="$(grep -s "^$1=" "$plan" || true)"
  if [ -z "$line" ]; then
    line="$1=$(awk -v m="$(minutes_left)" -v f="$2" 'BEGIN { printf "%.1f", m * f }')"
    echo "$line" >> "$plan"
  fi
  echo "${line#*=}"
}

minutes="$(stage_minutes damsm 0.6)"
echo "== 1/3 DAMSM text and image encoders (cfg/damsm/shapes_single.yml, up to $minutes minutes of training)"
"$root/scripts/launch.sh" "$ids" train cfg/damsm/shapes_single.yml --set TRAIN.MAX_MINUTES="$minutes"
minutes="$(stage_minutes attngan 0.95)"   # 5 %: its start-up and checkpoints, which the budget leaves out
echo "== 2/3 AttnGAN (cfg/attngan/shapes_single.yml, up to $minutes minutes of training)"
"$root/scripts/launch.sh" "$ids" train cfg/attngan/shapes_single.yml --set TRAIN.MAX_MINUTES="$minutes" "$@"
echo "== 3/3 gallery and evaluation"
"$root/scripts/launch.sh" "$one" sample cfg/attngan/shapes_single.yml "$@" --captions cfg/attngan/shapes_single_captions.txt \
  --n 8 --attention
"$root/scripts/launch.sh" "$one" eval cfg/attngan/shapes_single.yml "$@" > /dev/null
run="output/attngan_shapes_single"
echo "done: gallery $run/samples/index.html, eval report $run/eval/, tensorboard --logdir $run"
