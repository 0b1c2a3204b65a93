#!/usr/bin/env bash
# default_job.sh GPU_IDS [--set KEY=VALUE ...]: what `train.sh` runs without a config.
#   1. data/shapes_single (the single level: one object, plain background) is generated when
#      missing (by the first training command);
#   2. DAMSM is pretrained (cfg/damsm/shapes_single.yml) unless its text encoder exists;
#   3. AttnGAN trains on it (cfg/attngan/shapes_single.yml; the --set overrides go here);
#   4. a sample gallery with attention strips for captions it never saw, then an eval report.
# Every step resumes: running it again continues where it stopped.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ids="$1"; shift
one="${ids%%,*}"; [[ "$one" == cpu:* ]] && one=cpu   # sampling and eval run in one process
damsm="output/damsm_shapes_single/text_encoder.pth"
if [ ! -f "$damsm" ]; then
  echo "== 1/3 DAMSM text and image encoders (cfg/damsm/shapes_single.yml)"
  "$root/scripts/launch.sh" "$ids" train cfg/damsm/shapes_single.yml
else
  echo "== 1/3 DAMSM: using $damsm"
fi
echo "== 2/3 AttnGAN (cfg/attngan/shapes_single.yml)"
"$root/scripts/launch.sh" "$ids" train cfg/attngan/shapes_single.yml "$@"
echo "== 3/3 gallery and evaluation"
"$root/scripts/launch.sh" "$one" sample cfg/attngan/shapes_single.yml "$@" --captions cfg/attngan/shapes_single_captions.txt \
  --n 8 --attention
"$root/scripts/launch.sh" "$one" eval cfg/attngan/shapes_single.yml "$@" > /dev/null
run="output/attngan_shapes_single"
echo "done: gallery $run/samples/index.html, eval report $run/eval/, tensorboard --logdir $run"
