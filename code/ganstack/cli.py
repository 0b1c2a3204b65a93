"""Command line: `ganstack {prepare,train,eval,sample,serve,convert} --help`.

Every user error (config, data, checkpoint, arguments) is one line on stderr
and exit status 2; a stop by SIGINT/SIGTERM exits 130/143 after writing its
checkpoint.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path

from .data.synthetic.embedded import FACES_DEFAULTS, SHAPES_DEFAULTS, ensure_data
from .errors import GanstackError
from .serve.limits import LIMIT_HELP, Limits


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("cfg", help="YAML config, e.g. cfg/damsm/shapes.yml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set TRAIN.BATCH_SIZE=16 (repeatable)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganstack", description="Conditional GANs on one trainer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="generate an embedded dataset in its real on-disk format")
    p.add_argument("dataset", choices=["shapes", "photos", "faces"],
                   help="shapes: coloured objects with captions, boxes and label maps (text-to-image, pix2pix); "
                        "photos: the photographs installed with scikit-image and scikit-learn as a DIV2K-style "
                        "HR folder (super-resolution; --out only); faces: procedural faces that age, identities "
                        "fixed, UTKFace file names (face aging; --out, --num-train/--num-test identities, --size, "
                        "--seed)")
    p.add_argument("--level", default="scenes", choices=["single", "scenes", "crowded"],
                   help="single: one object on a plain background (the CPU proving ground); scenes (default): "
                        "1-3 objects in a 3x3 grid; crowded: 3-8 touching, overlapping objects at 128 px")
    p.add_argument("--out", default=None,
                   help="output folder (default: data/shapes, data/shapes_single or data/shapes_crowded by "
                        "level; data/shapes_aligned with --aligned; data/photos)")
    p.add_argument("--aligned", action="store_true",
                   help="also export label-map -> photo pairs in pix2pix's aligned A|B format into --out "
                        "(the scenes come from --source, generated there first when missing)")
    p.add_argument("--source", default=None,
                   help="with --aligned: the shapes set the pairs are cut from (default: the --level's folder, "
                        "data/shapes for scenes)")
    p.add_argument("--num-train", type=int, default=None,
                   help=f"training images (default {SHAPES_DEFAULTS['num_train']}); faces: identities (default "
                        f"{FACES_DEFAULTS['num_train']}, {FACES_DEFAULTS['per_identity']} ages each)")
    p.add_argument("--num-test", type=int, default=None,
                   help=f"test images (default {SHAPES_DEFAULTS['num_test']}); faces: identities (default "
                        f"{FACES_DEFAULTS['num_test']})")
    p.add_argument("--size", type=int, default=None,
                   help="image side in pixels (default: 64; crowded 128); e.g. --num-train 50000 --size 128")
    p.add_argument("--seed", type=int, default=SHAPES_DEFAULTS["seed"], help="random seed (default 0)")

    p = sub.add_parser("train", help="train the variant a config names (auto-resumes its run folder)")
    _add_config_args(p)
    p.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint file "
                   "(default: the latest in output/<RUN_NAME>/checkpoints, if any)")
    p.add_argument("--restart", action="store_true",
                   help="start afresh; an existing run folder is renamed aside, never deleted")

    p = sub.add_parser("eval", help="evaluate a checkpoint; writes a JSON report")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint file (default: the latest of the run)")
    p.add_argument("--split", default=None, help="dataset split (default: EVAL.SPLIT)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    p.add_argument("--out", help="report path (default: output/<RUN_NAME>/eval/<checkpoint>.json)")
    p.add_argument("--all", action="store_true",
                   help="evaluate every checkpoint of the run (metric curves in TensorBoard under output/<run>/eval)")

    p = sub.add_parser("sample", help="images for captions (or input images, pix2pix) from a trained generator, with an index.html gallery")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint file (default: TRAIN.NET_G, else the run's latest)")
    p.add_argument("--caption", action="append", default=[], metavar="TEXT",
                   help="a caption to draw (repeatable); unknown words are dropped with a warning")
    p.add_argument("--captions", metavar="FILE", help="a text file with one caption per line")
    p.add_argument("--from-split", metavar="SPLIT", help="also draw captions of this dataset split (e.g. test; "
                   "OP-GAN: with their layouts, the generated ones with TRAIN.GENERATED_BBOXES)")
    p.add_argument("--layout", action="append", default=[], metavar="FILE.json",
                   help="OP-GAN: captions with the boxes to draw them in (repeatable): {\"caption\": \"...\", "
                        "\"objects\": [{\"label\": \"red circle\" or 3, \"box\": [x, y, w, h]}]} or a list of "
                        "those, boxes normalised to the image; the gallery shows the boxes over the images")
    p.add_argument("--count", type=int, default=8, help="captions taken with --from-split (default 8)")
    p.add_argument("--n", type=int, default=8,
                   help="images per caption, or outputs per input image (pix2pix: they differ with "
                        "PIX2PIX.TEST_DROPOUT or NOISE_DIM) (default 8)")
    p.add_argument("--seed", type=int, default=0, help="noise seed; the same seed gives the same images (default 0)")
    p.add_argument("--truncation", type=float, default=0.0,
                   help="redraw noise values beyond +-T (e.g. 1.0); 0 = plain N(0, 1) (default)")
    p.add_argument("--interpolate", nargs=2, metavar=("A", "B"), help="also a strip from caption A to caption B")
    p.add_argument("--steps", type=int, default=8, help="images in the interpolation strip (default 8)")
    p.add_argument("--attention", action="store_true",
                   help="also write each caption's per-word attention maps of every stage, words "
                        "under the maps (AttnGAN): caption_NNN_attention.png")
    p.add_argument("--upscale", metavar="CFG_OR_CKPT",
                   help="text-to-image: also pass every image through a super-resolution model (its config, "
                        "e.g. cfg/srresnet/photos.yml, or a checkpoint of one); the gallery shows both sizes")
    p.add_argument("--input", action="append", default=[], metavar="IMAGE",
                   help="image-to-image variants (pix2pix): an input image, or a folder of them (repeatable)")
    p.add_argument("--ages", metavar="A,B,...",
                   help="face aging: an aging strip per input face, the input then the face at each age "
                        "(e.g. 20,40,60: each age's AGING.AGE_GROUPS group, or a two-domain model's domain)")
    p.add_argument("--out", help="output folder (default: output/<RUN_NAME>/samples)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="generate under autocast to bf16 or fp16 (faster on AMX CPUs and GPUs; images differ "
                        "slightly from fp32); --set TRAIN.CHANNELS_LAST=true adds NHWC nets (default fp32)")

    p = sub.add_parser("serve", help="a web page and JSON API (/docs) over the trained runs of a folder")
    p.add_argument("--runs", default="output", help="the folder of run folders (default output/)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N] for the generators")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="generate under autocast to bf16 or fp16, as sample --precision (default fp32)")
    limits = Limits()
    for name, help_text in LIMIT_HELP.items():
        p.add_argument(f"--max-{name.replace('_', '-')}", dest=name, type=int, default=getattr(limits, name),
                       help=f"{help_text} (default {getattr(limits, name)})")

    p = sub.add_parser("convert", help="write a dataset in another on-disk format")
    p.add_argument("format", choices=["reed-h5"], help="reed-h5: Reed et al.'s text-to-image HDF5 (GAN-INT-CLS)")
    p.add_argument("data_dir", help="a dataset in the AttnGAN layout (e.g. data/shapes)")
    p.add_argument("out", help="the HDF5 file to write, e.g. data/shapes.h5")
    p.add_argument("--net-e", required=True, metavar="PATH",
                   help="DAMSM text_encoder.pth that embeds the captions (recorded in the file for free text)")
    p.add_argument("--captions-per-image", type=int, default=10, help="captions per image (default 10)")
    p.add_argument("--words-num", type=int, default=24, help="words kept per caption (default 24)")
    return parser


# ------------------------------------------------------------------ commands
def cmd_prepare(args) -> int:
    if args.dataset == "faces":
        from .data.synthetic.faces import prepare_faces
        f = FACES_DEFAULTS
        out = prepare_faces(args.out or f["dir"], num_train=args.num_train or f["num_train"],
                            num_test=args.num_test or f["num_test"], per_identity=f["per_identity"],
                            size=args.size or f["size"], seed=args.seed)
        print(f"faces: {args.num_train or f['num_train']} train + {args.num_test or f['num_test']} test identities, "
              f"{f['per_identity']} ages each, UTKFace names, in {out}/{{train,test}} (identities.csv beside)")
        return 0
    args.num_train = args.num_train or SHAPES_DEFAULTS["num_train"]
    args.num_test = args.num_test or SHAPES_DEFAULTS["num_test"]
    if args.dataset == "photos":
        from .data.synthetic.photos import DEFAULT_DIR, prepare_photos
        out = prepare_photos(args.out or DEFAULT_DIR)
        print(f"photos: {out}/photos_train_HR (train) and {out}/photos_valid_HR (test), PNG")
        return 0
    from .data.synthetic.shapes import default_dir, load_meta, prepare_shapes
    scenes = (args.source or default_dir(args.level)) if args.aligned else (args.out or default_dir(args.level))
    out = prepare_shapes(scenes, level=args.level, num_train=args.num_train, num_test=args.num_test,
                         size=args.size, seed=args.seed)
    print(f"shapes ({args.level}): {args.num_train} train + {args.num_test} test images at "
          f"{load_meta(out)['size']} px in {out}")
    if args.aligned:
        from .data.synthetic.shapes_aligned import export_aligned
        pairs = export_aligned(out, args.out or "data/shapes_aligned")
        print(f"shapes pairs (A label map | B photo, PNG): {pairs}/{{train,test}}")
    return 0


def cmd_train(args) -> int:
    from .config import load_config
    from .engine.trainer import Interrupted, train
    cfg = load_config(args.cfg, args.overrides)
    ensure_data(cfg)
    try:
        run_dir = train(cfg, device=args.device, resume=args.resume, restart=args.restart)
    except Interrupted as stop:
        return stop.exit_code
    from .engine.distributed import launch_rank
    if launch_rank() == 0:
        print(f"done: {run_dir}  (tensorboard --logdir {run_dir})")
    return 0


def cmd_eval(args) -> int:
    from .config import load_config
    from .engine.evaluate import evaluate_checkpoint, evaluate_run, log_scalars
    cfg = load_config(args.cfg, args.overrides)
    split = args.split or cfg.EVAL.SPLIT
    if args.all:
        if args.ckpt or args.out:
            raise GanstackError("eval --all evaluates every checkpoint of the run; drop --ckpt / --out")
        for report, path in evaluate_run(cfg, split=split, seed=args.seed, device=args.device):
            print(f"step {report['step']}: {path}", file=sys.stderr)
        return 0
    report, path = evaluate_checkpoint(cfg, ckpt=args.ckpt, split=split, seed=args.seed, device=args.device,
                                       out=args.out)
    if not args.out:
        log_scalars(cfg, [report])
    print(json.dumps(report, indent=2))
    print(f"report: {path}", file=sys.stderr)
    return 0


def parse_ages(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ages = [int(a) for a in text.split(",") if a.strip()]
    except ValueError:
        raise GanstackError(f"--ages {text}: give whole years separated by commas, e.g. 20,40,60") from None
    if not ages or any(a < 0 or a > 150 for a in ages):
        raise GanstackError(f"--ages {text}: give ages from 0 to 150, e.g. 20,40,60")
    return ages


def cmd_sample(args) -> int:
    from .config import load_config
    from .engine.sample import read_captions_file, sample_gallery
    cfg = load_config(args.cfg, args.overrides)
    captions = list(args.caption) + (read_captions_file(args.captions) if args.captions else [])
    out = sample_gallery(cfg, ckpt=args.ckpt, captions=captions, from_split=args.from_split, count=args.count,
                         per_caption=args.n, seed=args.seed, truncation=args.truncation,
                         interpolate=args.interpolate, steps=args.steps, out=args.out, device=args.device,
                         attention=args.attention, inputs=args.input, upscale=args.upscale, layouts=args.layout,
                         ages=parse_ages(args.ages), precision=args.precision)
    print(f"gallery: {out / 'index.html'}")
    return 0


def cmd_convert(args) -> int:
    from .data.convert import attngan_to_reed_h5
    count = attngan_to_reed_h5(args.data_dir, args.out, net_e=args.net_e,
                               captions_per_image=args.captions_per_image, words_num=args.words_num)
    print(f"reed-h5: {count} image-caption pairs written to {args.out}")
    return 0


def cmd_serve(args) -> int:
    try:
        import uvicorn
        from .serve.app import create_app
    except ImportError as e:
        raise GanstackError(f"serve needs fastapi and uvicorn ({e.name} is missing): "
                            "pip install -r requirements.txt") from None
    from .serve.runs import find_runs
    if not 0 < args.port < 65536:
        raise GanstackError(f"--port {args.port}: give a port number from 1 to 65535")
    for name in LIMIT_HELP:
        if getattr(args, name) < 1:
            raise GanstackError(f"--max-{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    runs = find_runs(Path(args.runs))  # a missing folder is one line now, not at the first request
    limits = Limits(**{name: getattr(args, name) for name in LIMIT_HELP})
    app = create_app(args.runs, device=args.device, limits=limits, precision=args.precision)
    print(f"serving {len(runs)} run(s) of {args.runs} on http://{args.host}:{args.port}/ (API: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


COMMANDS = {"prepare": cmd_prepare, "train": cmd_train, "eval": cmd_eval, "sample": cmd_sample,
            "serve": cmd_serve, "convert": cmd_convert}


def one_line_warnings(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training (eval, sample, prepare): unwinds like Ctrl-C, so files being
    written are removed (atomic writes) and nothing half-done is left looking complete."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = one_line_warnings
    if args.command != "train":  # the trainer handles SIGTERM itself: a checkpoint, then exit 143
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except GanstackError as e:
        print(f"ganstack {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # training has not started: nothing to save
        name = "SIGTERM" if isinstance(stop, Terminated) else "interrupted"
        print(f"ganstack {args.command}: {name}: stopped; what it wrote so far is incomplete (a gallery "
              "without index.json, no report)" if args.command in ("eval", "sample") else
              f"ganstack {args.command}: {name}: stopped", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        if args.command != "train":
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
