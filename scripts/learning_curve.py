"""Learning curves: train a config with periodic evaluation; the metrics over training time as a CSV and a PNG.

    .venv/bin/python scripts/learning_curve.py cfg/attngan/shapes.yml --minutes 10 --device cpu
    .venv/bin/python scripts/learning_curve.py cfg/gan_int_cls/shapes.yml --minutes 30 --every 2 --set GAN.L1_COEF=50
    .venv/bin/python scripts/learning_curve.py cfg/pix2pix/shapes.yml --max-steps 1800 --every-steps 150
    .venv/bin/python scripts/learning_curve.py --plot-only output/attngan_shapes_curve/learning_curve.csv
    .venv/bin/python scripts/learning_curve.py --compare a.csv b.csv --labels paper reference --out fig.png
    .venv/bin/python scripts/learning_curve.py --compare a.csv b.csv --offsets 6 26.5 --out fig.png  # + encoder time

The config trains on the shared trainer (what `ganstack train` runs), in one process, pausing every
--every minutes of training (or --every-steps steps) to evaluate the current weights with the metrics
of `ganstack eval`, until --minutes of training (or --max-steps steps). Evaluation time is not
training time. Each pause writes a checkpoint, so running the same command again continues the curve
(rows are appended) and a larger --minutes extends it; --restart sets the run folder aside and starts
afresh. The budgets are totals of the curve, not increments. The learning-rate schedule is the
config's (it still runs to TRAIN.MAX_STEPS / MAX_EPOCH), so a curve is the beginning of the run
`ganstack train` would make; training ends early at that horizon.

Run folder: output/<RUN_NAME>_curve (plus _<hash of the --set overrides> when there are any), or
--set RUN_NAME=NAME exactly. Written into --out (default: the run folder):
  learning_curve.csv   one row per evaluation (step 0 first); the record, rewritten atomically
  learning_curve.json  how it was made: config, overrides, evaluation protocol, device, real-image values
  learning_curve.png   the plot, redrawn after every evaluation (--plot-only redraws it from the CSV)
"""
from __future__ import annotations

import argparse
import copy
import csv
import gc
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import textwrap
import time
import warnings
from pathlib import Path

from ganstack.errors import GanstackError
from ganstack.io import atomic_path, write_text_atomic

PROG = "learning_curve"
DEFAULT_EVAL_IMAGES = 1200
CSV_NAME = "learning_curve.csv"

PROGRESS = ["step", "epochs", "images_seen", "train_minutes", "cpu_minutes", "eval_minutes", "eval_images"]
JUDGED = ["colour_accuracy", "shape_accuracy", "exact_match", "object_recall", "class_recall", "soa_c", "soa_i",
          "soa_c_iou", "soa_i_iou"]
TEXT_METRICS = JUDGED + ["judge_fid", "r_precision", "r_precision_std", "inception_fid"]
TEXT_REAL = [f"{k}_real" for k in JUDGED] + ["r_precision_real"]
PAIR_METRICS = ["fcn_pixel_accuracy", "fcn_class_accuracy", "fcn_class_iou", "l1", "segmenter_fid", "inception_fid"]
PAIR_REAL = ["fcn_pixel_accuracy_real", "fcn_class_accuracy_real", "fcn_class_iou_real"]
# super-resolution: the model's scores; "_real" columns hold bicubic's, the baseline line of the plot
SR_METRICS = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "texture_fid", "texture_real_share"]
SR_REAL = [f"{k}_real" for k in SR_METRICS] + ["texture_real_share_targets"]
# face aging: the face judges' scores of the aged faces; "_real" columns hold real faces' (metrics/face_judge.py)
AGING_METRICS = ["target_age_accuracy", "identity_verification", "identity_mean_cosine", "judge_fid",
                 "mean_judged_age"]
AGING_REAL = ["target_age_accuracy_real", "identity_verification_real", "identity_mean_cosine_real", "judge_fid_real"]
COLUMNS = {"text": PROGRESS + TEXT_METRICS + TEXT_REAL, "pairs": PROGRESS + PAIR_METRICS + PAIR_REAL,
           "sr": PROGRESS + SR_METRICS + SR_REAL, "aging": PROGRESS + AGING_METRICS + AGING_REAL}
RIGHT_AXIS = {"psnr_y": "PSNR (Y), dB", "judge_fid": "judge FID (lower is better)"}  # columns drawn on a second
                                                # y axis (not scores in [0, 1])
# what the plot draws: (column, label, colour); the real images' value is column + "_real"
PLOTTED = {
    "text": [("colour_accuracy", "judge colour", "tab:red"), ("shape_accuracy", "judge shape", "tab:blue"),
             ("exact_match", "judge exact match", "tab:green"), ("r_precision", "R-precision", "tab:purple"),
             ("soa_c", "SOA-C (judge as detector)", "tab:orange"), ("judge_fid", "judge FID", "tab:brown")],
    "pairs": [("fcn_class_iou", "FCN class IoU", "tab:purple"), ("fcn_pixel_accuracy", "FCN pixel acc", "tab:red"),
              ("fcn_class_accuracy", "FCN class acc", "tab:blue")],
    "sr": [("psnr_y", "PSNR (Y)", "tab:red"), ("ssim_y", "SSIM (Y)", "tab:blue"),
           ("texture_real_share", "texture judge: patches taken for real", "tab:green")],
    "aging": [("target_age_accuracy", "target-age accuracy", "tab:red"),
              ("identity_verification", "identity verification", "tab:blue"),
              ("identity_mean_cosine", "identity mean cosine", "tab:green"), ("judge_fid", "judge FID", "tab:brown")],
}
REFERENCE_LABEL = {"text": "real images", "pairs": "real images", "sr": "bicubic", "aging": "real faces"}
TIME_NOTE = ("train_minutes: wall clock inside the trainer (steps, data loading, the checkpoint at each pause), "
             "summed over chunks; start-up and evaluation excluded. cpu_minutes: CPU time of the process over "
             "the same spans (time.process_time, every thread) plus its DataLoader workers (finished and running)")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage and exits; one line instead
        raise GanstackError(message)


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="scripts/learning_curve.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cfg", nargs="?", help="YAML config, e.g. cfg/attngan/shapes.yml")
    budget = ap.add_argument_group("budget (totals of the curve; at least one)")
    budget.add_argument("--minutes", type=float,
                        help="train until the curve holds N minutes of training (--clock; evaluation excluded)")
    budget.add_argument("--max-steps", type=int, help="train until step S")
    budget.add_argument("--every", type=float,
                        help="evaluate every M minutes of training (default: N/12, at least 1 minute)")
    budget.add_argument("--every-steps", type=int,
                        help="evaluate every K steps (default with --max-steps alone: S/12)")
    ap.add_argument("--eval-images", type=int, default=None,
                    help=f"images generated per evaluation, the split's captions taken round-robin over its images "
                         f"(default {DEFAULT_EVAL_IMAGES}; text-to-image variants; pix2pix translates the whole split)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (repeatable), as `ganstack train --set`")
    ap.add_argument("--out", help="folder of the CSV, JSON and PNG (default: the run folder); with --plot-only "
                                  "or --compare: the PNG file")
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None,
                    help="what --minutes, --every and the plot's x axis count: cpu (default) = CPU minutes of the "
                         "training process, all its threads and data-loader workers (core-minutes: unchanged by "
                         "other jobs on the machine; a 2-thread run on 2 free cores takes about half as many wall "
                         "minutes); wall = wall-clock minutes inside the trainer. Evaluation is excluded from both")
    ap.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda (default: auto)")
    ap.add_argument("--restart", action="store_true",
                    help="start the curve afresh: the run folder (and a curve outside it) are renamed aside")
    ap.add_argument("--plot-only", nargs="?", const="", metavar="CSV",
                    help="only redraw the PNG from a CSV (default: the CSV of CFG's curve)")
    ap.add_argument("--compare", nargs="+", metavar="CSV", help="draw several curves' CSVs on one figure")
    ap.add_argument("--labels", nargs="+", help="with --compare: a legend label per CSV")
    ap.add_argument("--offsets", nargs="+", type=float, metavar="MINUTES",
                    help="with --compare: minutes added to each curve's x axis, e.g. the CPU minutes of the text "
                         "encoder it was trained on, to draw whole pipelines against one clock")
    return ap


# ------------------------------------------------------------------ CSV and meta
def read_rows(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise GanstackError(f"{path}: cannot read ({e.strerror})") from None
    out = []
    for row in rows:
        out.append({k: _number(v) for k, v in row.items() if k is not None})
    if out and "step" not in out[0]:
        raise GanstackError(f"{path}: not a learning-curve CSV (no step column)")
    return out


def _number(text):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    write_text_atomic(path, buf.getvalue())


def kind_of_rows(rows: list[dict], path: Path) -> str:
    keys = set(rows[0]) if rows else set()
    if "target_age_accuracy" in keys:
        return "aging"
    if "psnr_y" in keys:
        return "sr"
    if "fcn_class_iou" in keys:
        return "pairs"
    if "colour_accuracy" in keys:
        return "text"
    raise GanstackError(f"{path}: no metric columns of a learning curve")


def read_meta(csv_path: Path) -> dict:
    path = csv_path.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------ evaluation
def metrics_row(report: dict, kind: str) -> dict:
    """The CSV columns of a `ganstack eval` report."""
    protocol = report.get("protocol", {})
    fid = lambda name: report.get(name, {}).get("fid")  # noqa: E731
    if kind == "text":
        gen, real = report.get("object_accuracy", {}), report.get("object_accuracy_real", {})
        rp, rp_real = report.get("r_precision", {}), report.get("r_precision_real", {})
        row = {k: gen.get(k) for k in JUDGED}
        row.update({f"{k}_real": real.get(k) for k in JUDGED})
        row.update(judge_fid=fid("judge"), inception_fid=fid("inception"), r_precision=rp.get("mean"),
                   r_precision_std=rp.get("std"), r_precision_real=rp_real.get("mean"),
                   eval_images=protocol.get("generated_images"))
        return row
    if kind == "aging":
        identity = report.get("identity", {})
        return {"target_age_accuracy": report.get("target_age_accuracy"),
                "target_age_accuracy_real": report.get("target_age_accuracy_real"),
                "identity_verification": identity.get("verification"),
                "identity_verification_real": identity.get("verification_real_same_identity"),
                "identity_mean_cosine": identity.get("mean_cosine"),
                "identity_mean_cosine_real": identity.get("mean_cosine_real_same_identity"),
                "judge_fid": report.get("judge_fid"), "judge_fid_real": report.get("judge_fid_real"),
                "mean_judged_age": report.get("mean_judged_age"), "eval_images": report.get("images")}
    if kind == "sr":
        base = report.get("bicubic", {})
        row = {k: report.get(k) for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")}
        row.update({f"{k}_real": base.get(k) for k in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")})
        judged, judged_base = report.get("texture_judge", {}), base.get("texture_judge", {})
        row.update(texture_fid=judged.get("fid"), texture_real_share=judged.get("real_share"),
                   texture_fid_real=judged_base.get("fid"), texture_real_share_real=judged_base.get("real_share"),
                   texture_real_share_targets=judged.get("real_share_of_targets"), eval_images=protocol.get("images"))
        return row
    gen, real = report.get("fcn_score", {}), report.get("fcn_score_real", {})
    row = {"l1": report.get("l1"), "segmenter_fid": fid("segmenter"), "inception_fid": fid("inception"),
           "eval_images": protocol.get("images")}
    for key in ("pixel_accuracy", "class_accuracy", "class_iou"):
        row[f"fcn_{key}"], row[f"fcn_{key}_real"] = gen.get(key), real.get(key)
    return row


def _real_values(row: dict, kind: str) -> dict:
    return {k: row.get(k) for k in {"text": TEXT_REAL, "pairs": PAIR_REAL, "sr": SR_REAL, "aging": AGING_REAL}[kind]}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its children (DataLoader workers): the finished,
    waited-for ones and, on Linux, the running ones."""
    total = time.process_time()
    try:
        import resource
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += ru.ru_utime + ru.ru_stime
    except ImportError:  # not on Unix
        pass
    return total + _running_children_seconds()


def _running_children_seconds() -> float:
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    me, tick, total = os.getpid(), os.sysconf("SC_CLK_TCK"), 0.0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == me:  # ppid; utime and stime are fields 14 and 15 of stat
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def device_text(device) -> str:
    import torch
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"CPU {model}, {threads} thread{'s' if threads != 1 else ''}"


def curve_run_name(cfg, overrides: list[str]) -> str:
    """<RUN_NAME>_curve[_<hash of the overrides>]; --set RUN_NAME=... is taken as it is."""
    from ganstack.config import parse_override
    keys = [parse_override(o)[0] for o in overrides]
    if "RUN_NAME" in keys:
        return cfg.RUN_NAME
    name = f"{cfg.RUN_NAME}_curve"
    if overrides:
        name += "_" + hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:6]
    return name


def _set_aside(paths: list[Path]) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for p in paths:
        if p.exists():
            aside = p.with_name(f"{p.stem}.{stamp}{p.suffix}")
            os.replace(p, aside)
            print(f"--restart: {p} moved to {aside}", flush=True)


POINT_DIR = "curve_point"  # inside checkpoints/: a second name for the checkpoint of the curve's last row


def _keep_point(ckpt_dir: Path, step: int) -> None:
    """Give the checkpoint of the row just written a second name that the trainer's rotation
    (TRAIN.KEEP_CHECKPOINTS) never removes, so a run stopped mid-chunk, after more periodic
    checkpoints than it keeps, still continues from the curve's last row (a hard link: no copy)."""
    from ganstack.engine.checkpoint import checkpoint_path, list_checkpoints
    source = checkpoint_path(ckpt_dir, step)
    if step <= 0 or not source.is_file():
        return
    folder = ckpt_dir / POINT_DIR
    folder.mkdir(exist_ok=True)
    kept = checkpoint_path(folder, step)
    if not kept.is_file():
        try:
            os.link(source, kept)  # one atomic step
        except OSError:  # a filesystem without hard links
            with atomic_path(kept) as tmp:
                shutil.copyfile(source, tmp)
    for old in list_checkpoints(folder):
        if old != kept:
            old.unlink(missing_ok=True)


def _start_point(rows: list[dict], ckpt_dir: Path, csv_path: Path) -> str | None:
    """The checkpoint the curve continues from (None: from scratch); checkpoints written after the
    curve's last row (a run stopped mid-chunk) are moved aside so they are neither resumed nor rotated in."""
    from ganstack.engine.checkpoint import checkpoint_path, list_checkpoints
    found = list_checkpoints(ckpt_dir)
    if not rows:
        if found:
            raise GanstackError(f"{ckpt_dir.parent} already holds training (checkpoint {found[-1].name}) but no "
                                f"learning curve at {csv_path}: pass the --out of its curve, or --restart to set "
                                "the run folder aside")
        return None
    last = int(rows[-1]["step"])
    target = checkpoint_path(ckpt_dir, last) if last > 0 else None
    if target is not None and not target.is_file():
        kept = checkpoint_path(ckpt_dir / POINT_DIR, last)
        if not kept.is_file():
            raise GanstackError(f"{csv_path} ends at step {last} but {target} is gone; --restart to begin a new "
                                "curve")
        os.link(kept, target)  # rotated away by a run stopped mid-chunk: the curve keeps its own name for it
    ahead = [p for p in found if p != target and int(p.stem.split("_")[1]) > last]
    if ahead:
        aside = ckpt_dir / "ahead_of_curve"
        aside.mkdir(exist_ok=True)
        for p in ahead:
            os.replace(p, aside / p.name)
        print(f"{len(ahead)} checkpoint(s) after the curve's last step {last} moved to {aside}", flush=True)
    return str(target) if target else None


def run_curve(args) -> int:
    from ganstack.data.synthetic.embedded import ensure_data
    from ganstack.config import load_config
    from ganstack.engine import distributed
    from ganstack.engine.trainer import Interrupted, Trainer, run_dir_of

    for name, value in (("--minutes", args.minutes), ("--max-steps", args.max_steps), ("--every", args.every),
                        ("--every-steps", args.every_steps), ("--eval-images", args.eval_images)):
        if value is not None and not value > 0:
            raise GanstackError(f"{name} must be > 0, got {value}")
    if args.minutes is None and args.max_steps is None:
        raise GanstackError("no budget: give --minutes N (minutes of training) or --max-steps S")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise GanstackError("learning curves train in one process; run it without torchrun")
    every, every_steps = args.every, args.every_steps
    if every is None and every_steps is None:
        if args.minutes is not None:
            every = min(args.minutes, max(1.0, args.minutes / 12))
        else:
            every_steps = max(1, args.max_steps // 12)

    cfg = load_config(args.cfg, args.overrides)
    if cfg.VARIANT == "damsm":
        raise GanstackError("VARIANT=damsm: learning curves are for generators (gan_int_cls, attngan, pix2pix); "
                            "DAMSM's R-precision curve: TRAIN.EVAL_INTERVAL and TensorBoard")
    cfg.RUN_NAME = curve_run_name(cfg, args.overrides)
    run_dir = run_dir_of(cfg)
    out = Path(args.out) if args.out else run_dir
    csv_path, meta_path, png_path = out / CSV_NAME, out / "learning_curve.json", out / "learning_curve.png"

    rows, meta = [], {}
    if args.restart:
        inside = out.resolve() == run_dir.resolve() or run_dir.resolve() in out.resolve().parents
        if not inside:
            _set_aside([csv_path, meta_path, png_path])
    elif csv_path.is_file():
        rows, meta = read_rows(csv_path), read_meta(csv_path)
        if meta and meta.get("overrides") != list(args.overrides):
            raise GanstackError(f"{csv_path}: this curve was made with --set {' '.join(meta['overrides']) or '(none)'}; "
                                "continue it with the same overrides, or --restart")
        if args.eval_images and meta.get("eval_images") and meta["eval_images"] != args.eval_images:
            raise GanstackError(f"{csv_path}: this curve evaluates {meta['eval_images']} images per point; continue "
                                "it with the same --eval-images (or none), or --restart")
    eval_images = args.eval_images or meta.get("eval_images") or DEFAULT_EVAL_IMAGES
    clock = args.clock or meta.get("clock") or "cpu"
    if meta.get("clock") and meta["clock"] != clock:
        raise GanstackError(f"{csv_path}: this curve counts {meta['clock']} minutes; continue it with the same "
                            "--clock (or none), or --restart")
    minutes_col = f"{clock}_minutes" if clock == "cpu" else "train_minutes"
    if rows and ((args.minutes is not None and float(rows[-1][minutes_col]) >= args.minutes)
                 or (args.max_steps is not None and int(rows[-1]["step"]) >= args.max_steps)):
        plot_curves([(None, rows, meta)], png_path)
        print(f"curve: {csv_path} already reaches the budget (step {rows[-1]['step']}, "
              f"{float(rows[-1][minutes_col]):.2f} {clock} minutes of training); redrawn {png_path}", flush=True)
        return 0
    ensure_data(cfg)
    resume = None if args.restart else _start_point(rows, run_dir / "checkpoints", csv_path)

    trainer = None
    try:
        trainer = Trainer(cfg, device=args.device, resume=resume, restart=args.restart)
        if rows and trainer.step != int(rows[-1]["step"]):
            raise GanstackError(f"{csv_path} ends at step {rows[-1]['step']} but the run resumed at step "
                                f"{trainer.step}; --restart to begin a new curve")
        kind = "text" if hasattr(trainer.variant, "evaluation_conditions") else \
            "sr" if hasattr(trainer.variant, "scale") else "aging" if hasattr(trainer.variant, "age_strip") else "pairs"
        if rows and kind_of_rows(rows, csv_path) != kind:
            raise GanstackError(f"{csv_path}: a curve of another kind of variant; --restart or another --out")
        if kind != "text" and args.eval_images:
            print(f"note: --eval-images applies to text-to-image variants; {cfg.VARIANT} translates every "
                  f"{cfg.EVAL.SPLIT} input once", flush=True)
        eval_cfg = copy.deepcopy(cfg)
        if kind == "text":
            real_count = len(trainer.variant.dataset(cfg.EVAL.SPLIT, train=False))
            eval_cfg.EVAL.NUM_IMAGES = eval_images
            eval_cfg.EVAL.KID_SUBSET_SIZE = min(cfg.EVAL.KID_SUBSET_SIZE, eval_images, real_count)
        global_batch = trainer.batch_size * trainer.env.world
        meta = {
            "config": str(args.cfg), "overrides": list(args.overrides), "run_dir": str(run_dir),
            "variant": cfg.VARIANT, "kind": kind,
            "eval_images": eval_images if kind == "text" else None,
            "eval": (f"{cfg.EVAL.SPLIT} split, seed 0, `ganstack eval` metrics of the "
                     f"{'EMA generator' if 'G' in trainer.variant.ema_nets else 'generator'}; "
                     + (f"{eval_images} images per point, the captions round-robin over the split's images, "
                        f"KID subsets of {eval_cfg.EVAL.KID_SUBSET_SIZE}" if kind == "text"
                        else "every input of the split translated once")),
            "device": device_text(trainer.env.device), "global_batch": global_batch,
            "schedule_horizon_steps": trainer.total_steps, "steps_per_epoch": trainer.steps_per_epoch,
            "time": TIME_NOTE, "clock": clock, "real": meta.get("real", {}),
        }
        print(f"learning curve of {args.cfg}: run folder {run_dir}, curve {csv_path}", flush=True)

        def evaluate(train_min: float, cpu_min: float) -> None:
            t0 = time.perf_counter()
            report = trainer.evaluate(eval_cfg, spread_captions=True)
            row = metrics_row(report, kind)
            row.update(step=trainer.step, epochs=round(trainer.step / trainer.steps_per_epoch, 4),
                       images_seen=trainer.step * global_batch, train_minutes=train_min, cpu_minutes=cpu_min,
                       eval_minutes=(time.perf_counter() - t0) / 60)
            rows.append(row)
            meta["real"] = _real_values(row, kind)
            _keep_point(run_dir / "checkpoints", trainer.step)
            write_rows(csv_path, rows, COLUMNS[kind])
            write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
            plot_curves([(None, rows, meta)], png_path)
            shown = "  ".join(f"{label} {_cell(row.get(col)) or '-'}" for col, label, _ in PLOTTED[kind])
            print(f"curve: step {trainer.step}, {train_min:.2f} train min, {cpu_min:.2f} CPU min, "
                  f"eval {row['eval_minutes'] * 60:.0f} s: "
                  f"{shown}", flush=True)

        if not rows:
            evaluate(0.0, 0.0)
        train_min, cpu_min = float(rows[-1]["train_minutes"]), float(rows[-1]["cpu_minutes"])
        while True:
            spent = cpu_min if clock == "cpu" else train_min
            minutes_left = args.minutes is None or spent < args.minutes
            steps_left = args.max_steps is None or trainer.step < args.max_steps
            if not (minutes_left and steps_left):
                print(f"curve: budget reached at step {trainer.step}, {spent:.2f} {clock} minutes of training; "
                      f"{png_path}", flush=True)
                break
            if trainer.step >= trainer.total_steps:
                print(f"curve: ends at the config's horizon, step {trainer.total_steps} (TRAIN.MAX_STEPS / MAX_EPOCH); "
                      "a longer curve needs a larger one, as a new curve: the learning-rate schedule depends on it",
                      flush=True)
                break
            stop_step = args.max_steps or math.inf
            if every_steps:
                stop_step = min(stop_step, (trainer.step // every_steps + 1) * every_steps)
            stop_min = args.minutes or math.inf
            if every:
                stop_min = min(stop_min, (math.floor(spent / every + 1e-9) + 1) * every)
            start_min, t0, c0 = spent, time.perf_counter(), cpu_seconds()
            now = cpu_seconds if clock == "cpu" else time.perf_counter
            s0 = c0 if clock == "cpu" else t0

            def pause(step: int) -> bool:
                return step >= stop_step or start_min + (now() - s0) / 60 >= stop_min

            try:
                trainer.fit(pause)
            except Interrupted as stop:
                print(f"{PROG}: stopped; the curve keeps its rows up to step {rows[-1]['step']}: run the same "
                      "command again to continue", file=sys.stderr)
                return stop.exit_code
            train_min += (time.perf_counter() - t0) / 60
            cpu_min += (cpu_seconds() - c0) / 60
            evaluate(train_min, cpu_min)
    finally:
        trainer = None
        gc.collect()
        distributed.teardown()
    return 0


# ------------------------------------------------------------------ plots
STYLES = [("-", "o"), ("-.", "s"), (":", "^"), ((0, (5, 1)), "D"), ((0, (3, 1, 1, 1, 1, 1)), "v")]


def _title(meta: dict, fallback: str) -> str:
    head = meta.get("config") or fallback
    if meta.get("overrides"):
        head += "  --set " + " ".join(meta["overrides"])
    return textwrap.fill(head, 110)


def plot_curves(curves: list[tuple[str | None, list[dict], dict]], png: Path, title: str | None = None) -> Path:
    """One figure (900 x 500 px): the plotted metrics over training minutes, real images dashed;
    several curves differ by line style and marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    kinds = {kind_of_rows(rows, png) for _, rows, _ in curves}
    if len(kinds) != 1:
        raise GanstackError("--compare: the CSVs mix text-to-image and image-to-image curves")
    kind = kinds.pop()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    right = ax.twinx() if any(col in RIGHT_AXIS for col, _, _ in PLOTTED[kind]) else None
    handles, drawn_real = [], set()
    for n, (label, rows, meta) in enumerate(curves):
        style, marker = STYLES[n % len(STYLES)]
        x = [r.get(_x_column(meta)) or 0.0 for r in rows]
        for col, name, colour in PLOTTED[kind]:
            y = [r.get(col) for r in rows]
            if all(v is None for v in y):
                continue
            axis = right if col in RIGHT_AXIS else ax
            axis.plot(x, [math.nan if v is None else v for v in y], linestyle=style, marker=marker, markersize=3,
                      color=colour, linewidth=1.4)
            real = next((r.get(f"{col}_real") for r in reversed(rows) if r.get(f"{col}_real") is not None), None)
            if real is not None and (col, round(real, 4)) not in drawn_real:
                drawn_real.add((col, round(real, 4)))
                axis.axhline(real, linestyle="--", color=colour, linewidth=1.0, alpha=0.6)
            if n == 0:
                handles.append(Line2D([], [], color=colour, linewidth=1.4, label=name))
    if drawn_real:
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1.0, label=REFERENCE_LABEL[kind]))
    if len(curves) > 1:
        for n, (label, _, _) in enumerate(curves):
            style, marker = STYLES[n % len(STYLES)]
            handles.append(Line2D([], [], color="black", linestyle=style, marker=marker, markersize=3, label=label))
    ax.legend(handles=handles, fontsize=8, loc="upper left", framealpha=0.85)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_ylabel("score")
    if right is not None:
        right.set_ylabel(" / ".join(RIGHT_AXIS[col] for col, _, _ in PLOTTED[kind] if col in RIGHT_AXIS))
    first_meta, first_rows = curves[0][2], curves[0][1]
    device = first_meta.get("device", "this device")
    if _x_column(first_meta) == "cpu_minutes":
        ax.set_xlabel(f"CPU minutes of training (core-minutes, evaluation excluded; {device})", fontsize=9)
    else:
        ax.set_xlabel(f"training minutes, wall clock, evaluation excluded ({device})", fontsize=9)
    # steps of the first curve on the top axis
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    picks = _tick_rows(first_rows, 8)
    top.set_xticks([r.get(_x_column(first_meta)) or 0.0 for r in picks])
    top.set_xticklabels([str(r.get("step")) for r in picks], fontsize=8)
    top.set_xlabel("step" + (f" ({curves[0][0]})" if len(curves) > 1 else ""), fontsize=9)
    if title is None:
        title = _title(first_meta, curves[0][0] or str(png.stem))
    variants = sorted({str(meta.get("variant", kind)) for _, _, meta in curves})
    images = sorted({str(rows[-1].get("eval_images")) for _, rows, _ in curves})
    what = {"text": "images generated", "pairs": "inputs translated", "sr": "whole test images upscaled",
            "aging": "young test faces aged"}[kind]
    sub = f"{', '.join(variants)}; evaluation: {' / '.join(images)} {what} per point"
    ax.set_title(f"{title}\n{sub}", fontsize=9)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return png


def _x_column(meta: dict) -> str:
    """The CSV column a curve is drawn against (curves made before --clock existed: wall clock)."""
    return "cpu_minutes" if meta.get("clock", "wall") == "cpu" else "train_minutes"


def _tick_rows(rows: list[dict], most: int) -> list[dict]:
    """Up to `most` rows for step ticks: evenly spread, at least 1/`most` of the axis apart, the last kept."""
    minutes = lambda r: r.get("train_minutes") or 0.0  # noqa: E731
    gap = (max(map(minutes, rows), default=0.0) or 1.0) / most
    picks: list[dict] = []
    for r in rows:
        if picks and minutes(r) - minutes(picks[-1]) < gap:
            if r is not rows[-1]:
                continue
            picks.pop()
        picks.append(r)
    return picks


def _csv_of(arg: str) -> Path:
    path = Path(arg)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise GanstackError(f"{path}: no such learning-curve CSV")
    return path


def _png_out(out: str | None, default: Path) -> Path:
    if not out:
        return default
    path = Path(out)
    return path if path.suffix.lower() == ".png" else path / "learning_curve.png"


def plot_only(args) -> int:
    if args.plot_only:
        csv_path = _csv_of(args.plot_only)
    else:
        if not args.cfg:
            raise GanstackError("--plot-only needs a CSV (or CFG with the --set overrides of its curve)")
        from ganstack.config import load_config
        from ganstack.engine.trainer import run_dir_of
        cfg = load_config(args.cfg, args.overrides)
        cfg.RUN_NAME = curve_run_name(cfg, args.overrides)
        csv_path = _csv_of(str(Path(args.out) if args.out and not args.out.endswith(".png") else run_dir_of(cfg)))
        args.out = args.out if args.out and args.out.endswith(".png") else None
    rows = read_rows(csv_path)
    if not rows:
        raise GanstackError(f"{csv_path}: no rows to plot")
    png = plot_curves([(None, rows, read_meta(csv_path))], _png_out(args.out, csv_path.with_suffix(".png")))
    print(f"plot: {png}")
    return 0


def compare(args) -> int:
    paths = [_csv_of(p) for p in args.compare]
    if args.labels and len(args.labels) != len(paths):
        raise GanstackError(f"--labels: {len(args.labels)} labels for {len(paths)} CSVs")
    offsets = args.offsets or [0.0] * len(paths)
    if len(offsets) != len(paths) or min(offsets) < 0:
        raise GanstackError(f"--offsets: give one number of minutes >= 0 per CSV ({len(paths)}), got {offsets}")
    curves = []
    for n, path in enumerate(paths):
        rows, meta = read_rows(path), read_meta(path)
        if not rows:
            raise GanstackError(f"{path}: no rows to plot")
        x = _x_column(meta)
        rows = [dict(r, **{x: (r.get(x) or 0.0) + offsets[n]}) for r in rows]
        label = args.labels[n] if args.labels else (
            " ".join(meta.get("overrides", [])) or meta.get("config") or path.parent.name)
        curves.append((label, rows, meta))
    configs = sorted({c[2].get("config", "?") for c in curves})
    shifted = "; each curve starts at its --offsets" if any(offsets) else ""
    png = plot_curves(curves, _png_out(args.out, Path("output/learning_curves.png")),
                      title=textwrap.fill("learning curves: " + ", ".join(configs) + shifted, 110))
    print(f"plot: {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from ganstack.cli import one_line_warnings
    warnings.formatwarning = one_line_warnings
    try:
        args = build_parser().parse_args(argv)
        if args.compare:
            return compare(args)
        if args.plot_only is not None:
            return plot_only(args)
        if not args.cfg:
            raise GanstackError("no config: scripts/learning_curve.py CFG --minutes N (or --plot-only CSV, "
                                "--compare CSV ...)")
        return run_curve(args)
    except GanstackError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the CSV keeps the rows written so far: run the same command again to "
              "continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
