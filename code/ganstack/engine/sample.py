"""`ganstack sample`: images for captions from a trained generator, and an HTML gallery.

output/<run>/samples/ (or --out) receives one PNG per image, an optional
interpolation strip between two captions, index.json (what made each file)
and index.html, which shows each caption beside its images.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import torch
from torchvision.utils import make_grid

from ..config import Config
from ..errors import GanstackError
from ..io import atomic_path, signals_deferred, write_text_atomic
from ..visual import boxes_overlay, png_bytes, three_channels
from .evaluate import load_variant
from .trainer import run_dir_of


def read_captions_file(path: str | Path) -> list[str]:
    """One caption per line; blank lines and lines starting with # are skipped."""
    path = Path(path)
    if not path.is_file():
        raise GanstackError(f"--captions {path}: file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise GanstackError(f"--captions {path}: not UTF-8 text; give one caption per line") from None
    captions = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not captions:
        raise GanstackError(f"--captions {path}: no captions in it; write one caption per line")
    return captions


def save_png(image: torch.Tensor, path: Path) -> None:
    """(3, H, W) in [-1, 1] -> PNG, rounded to uint8, written atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(png_bytes(image))


def begin_gallery(out_dir: Path) -> None:
    """A gallery is complete when its index.json and index.html exist; they are removed first and
    written last, so one stopped half-way (SIGTERM, Ctrl-C, a crash) never looks complete."""
    for name in ("index.json", "index.html"):
        (out_dir / name).unlink(missing_ok=True)


def finish_gallery(out_dir: Path, index: dict, page: str) -> None:
    with signals_deferred():
        write_text_atomic(out_dir / "index.json", json.dumps(index, indent=2) + "\n")
        write_text_atomic(out_dir / "index.html", page)


def load_upscaler(spec: str, device: str = "auto"):
    """`--upscale`: the super-resolution variant of a config (its run's latest checkpoint, or TRAIN.NET_G)
    or of a checkpoint file (its saved config)."""
    from ..config import config_from_dict, load_config
    from .checkpoint import load_checkpoint
    path = Path(spec)
    if not path.is_file():
        raise GanstackError(f"--upscale {spec}: no such file; give a super-resolution config (e.g. "
                            "cfg/srresnet/photos.yml) or one of its checkpoints")
    if path.suffix.lower() in (".yml", ".yaml"):
        cfg, ckpt = load_config(path), None
    else:
        cfg, ckpt = config_from_dict(load_checkpoint(path).get("config"), f"--upscale {path}"), str(path)
    variant, _, _ = load_variant(cfg, ckpt, device)
    if not hasattr(variant, "scale"):
        raise GanstackError(f"--upscale {spec}: VARIANT={cfg.VARIANT} is not a super-resolution model "
                            "(srresnet, srgan or srcnn)")
    return variant


def _gallery_html(title: str, rows: list[dict], strip: dict | None) -> str:
    style = ("body{font-family:sans-serif;margin:2em}td{padding:6px;vertical-align:middle}"
             "img{width:128px;height:128px;image-rendering:pixelated;margin:1px}"
             "img.attention,img.upscaled{width:auto;height:auto}img.layout{width:192px;height:192px}.strip img{width:96px;height:96px}"
             "td.caption{max-width:28em}")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><table>"]
    for row in rows:
        images = "".join(f"<img src='{html.escape(f)}' alt=''>" for f in row["files"])
        out.append(f"<tr><td class='caption'>{html.escape(row['caption'])}</td><td>{images}</td></tr>")
        if row.get("layout_files"):  # OP-GAN: the same images with their layout's boxes and labels drawn
            drawn = "".join(f"<img class='layout' src='{html.escape(f)}' alt=''>" for f in row["layout_files"])
            out.append(f"<tr><td class='caption'>layout: {html.escape(row['layout'])}</td><td>{drawn}</td></tr>")
        if row.get("upscaled"):  # the super-resolved images (--upscale), at their natural size
            big = "".join(f"<img class='upscaled' src='{html.escape(f)}' alt=''>" for f in row["upscaled"])
            out.append(f"<tr><td class='caption'>{html.escape(row['upscaled_by'])}</td><td>{big}</td></tr>")
        if row.get("attention"):  # the words' attention maps, at their natural size
            out.append(f"<tr><td></td><td><img class='attention' src='{html.escape(row['attention'])}' "
                       f"alt='attention maps'></td></tr>")
    out.append("</table>")
    if strip:
        images = "".join(f"<img src='{html.escape(f)}' alt=''>" for f in strip["files"])
        out.append(f"<h2>Interpolation</h2><p>{html.escape(strip['from'])} &rarr; {html.escape(strip['to'])}</p>"
                   f"<div class='strip'>{images}</div>")
    out.append("</body></html>\n")
    return "\n".join(out)


def sample_gallery(cfg: Config, *, ckpt: str | None = None, captions: list[str] | None = None,
                   from_split: str | None = None, count: int = 8, per_caption: int = 8, seed: int = 0,
                   truncation: float = 0.0, interpolate: list[str] | None = None, steps: int = 8,
                   out: str | None = None, device: str = "auto", attention: bool = False,
                   inputs: list[str] | None = None, upscale: str | None = None,
                   layouts: list[str] | None = None, ages: list[int] | None = None,
                   precision: str = "fp32") -> Path:
    if per_caption < 1 or steps < 2:
        raise GanstackError("--n must be >= 1 and --steps >= 2")
    if truncation < 0:
        raise GanstackError(f"--truncation {truncation}: must be >= 0 (0 = no truncation)")
    if not captions and not from_split and not interpolate and not inputs and not layouts:
        raise GanstackError("nothing to sample: give --caption TEXT, --captions FILE, --from-split SPLIT, "
                            "--interpolate A B, --layout FILE (OP-GAN) or (image-to-image variants) --input IMAGE")
    variant, path, state = load_variant(cfg, ckpt, device, precision)
    if ages and not hasattr(variant, "age_strip"):
        raise GanstackError(f"--ages: VARIANT={cfg.VARIANT} does not age faces (aging_cycle, aging_conditional do)")
    if getattr(variant, "condition_kind", "text") == "image":
        return translation_gallery(cfg, variant, path, state, inputs=inputs, from_split=from_split, count=count,
                                   per_input=per_caption, seed=seed, out=out, captions=captions or interpolate,
                                   ages=ages)
    if layouts and not hasattr(variant, "conditions_from_layouts"):
        raise GanstackError(f"--layout: VARIANT={cfg.VARIANT} is not conditioned on layouts (OP-GAN is); drop --layout")
    if attention and not hasattr(variant, "attention_strip"):
        raise GanstackError(f"--attention: VARIANT={cfg.VARIANT} has no word attention; drop --attention")
    upscaler = load_upscaler(upscale, device) if upscale else None
    out_dir = Path(out) if out else run_dir_of(cfg) / "samples"
    begin_gallery(out_dir)
    texts, cond = list(captions or []), None
    if texts:
        cond = variant.conditions_from_text(texts)
    more = [variant.conditions_from_layouts(p) for p in layouts or []]
    if from_split:
        more.append(variant.conditions_from_split(from_split, count, seed)[:2])
    for more_texts, more_cond in more:
        texts += more_texts
        cond = more_cond if cond is None else (None if more_cond is None else torch.cat([cond, more_cond]))

    rows, grids = [], []
    for i, text in enumerate(texts):
        noise = variant.noise(per_caption, seed=seed + i, truncation=truncation)
        c = None if cond is None else cond[i:i + 1].expand(per_caption, *cond.shape[1:])
        images = variant.sample(c, noise)
        files = [f"caption_{i:03d}_{j:02d}.png" for j in range(per_caption)]
        for image, name in zip(images, files):
            save_png(image, out_dir / name)
        row = {"caption": text, "files": files}
        if hasattr(variant, "drawn_layout"):  # the boxes and labels the images were drawn for
            boxes, names = variant.drawn_layout(cond[i])
            row["layout"] = ", ".join(names) or "no objects"
            row["layout_files"] = [name.replace(".png", "_layout.png") for name in files]
            for image, name in zip(images, row["layout_files"]):
                save_png(boxes_overlay(image.float().add(1).div(2), boxes, names) * 2 - 1, out_dir / name)
        if upscaler is not None:  # the GAN-INT-CLS project's SRCNN step: each image also super-resolved
            big = upscaler.sample(images.float().clamp(-1, 1))
            row["upscaled"] = [name.replace(".png", f"_x{upscaler.scale}.png") for name in files]
            row["upscaled_by"] = f"x{upscaler.scale} by {upscaler.name} ({Path(upscale).name})"
            for image, name in zip(big, row["upscaled"]):
                save_png(image, out_dir / name)
        if attention:  # every stage's per-word attention for the first image, words written under the maps
            strip = variant.attention_strip(text, c[:1], noise[:1])
            row["attention"] = f"caption_{i:03d}_attention.png"
            save_png(strip * 2 - 1, out_dir / row["attention"])
        rows.append(row)
        grids.append(images.cpu())

    strip = None
    if interpolate:
        ends = variant.conditions_from_text(list(interpolate))
        line = None if ends is None else variant.interpolate(ends[:1], ends[1:2], steps)
        noise = variant.noise(1, seed=seed, truncation=truncation).expand(steps, -1)  # one z: only text moves
        images = variant.sample(line, noise)
        files = [f"interpolation_{k:02d}.png" for k in range(steps)]
        for image, name in zip(images, files):
            save_png(image, out_dir / name)
        save_png(make_grid(images.cpu(), nrow=steps, padding=2, pad_value=1.0) * 2 - 1, out_dir / "interpolation.png")
        strip = {"from": interpolate[0], "to": interpolate[1], "files": files}

    index = {"variant": cfg.VARIANT, "checkpoint": str(path), "step": state["step"], "seed": seed,
             "truncation": truncation, "rows": rows, "interpolation": strip}
    title = f"{cfg.VARIANT} samples: {Path(path).name} (step {state['step']}, seed {seed})"
    finish_gallery(out_dir, index, _gallery_html(title, rows, strip))
    return out_dir



def translation_gallery(cfg: Config, variant, path, state, *, inputs: list[str] | None, from_split: str | None,
                        count: int, per_input: int, seed: int, out: str | None, captions=None,
                        ages: list[int] | None = None) -> Path:
    """Image-to-image variants: for each input image (--input files or folders, and/or --from-split), K
    outputs (`per_input`; they differ through z and/or test-time dropout, each drawn from seed + k) and,
    for dataset items, the target. Row files: NNN_input.png, NNN_out_KK.png, NNN_target.png."""
    if captions:
        raise GanstackError(f"VARIANT={cfg.VARIANT} translates images, it takes no captions: give --input IMAGE "
                            "or --from-split test")
    if not inputs and not from_split:
        raise GanstackError(f"nothing to sample: VARIANT={cfg.VARIANT} needs --input IMAGE (file or folder) "
                            "or --from-split SPLIT")
    names, conditions, targets = [], [], []
    if inputs:
        files, images = variant.conditions_from_files(inputs)
        names += files
        conditions += list(images)
        targets += [None] * len(files)
    if from_split:
        split_names, images, indices = variant.conditions_from_split(from_split, count, seed)
        names += split_names
        conditions += list(images)
        targets += list(variant.targets_of_split(from_split, indices))
    out_dir = Path(out) if out else run_dir_of(cfg) / "samples"
    begin_gallery(out_dir)
    rows = []
    for i, (name, x, target) in enumerate(zip(names, conditions, targets)):
        files = [f"{i:03d}_input.png"]
        save_png(three_channels(x), out_dir / files[0])
        if ages:  # face aging: an aging strip, the input then each age
            for age, y in zip(ages, variant.age_strip(x, ages)):
                files.append(f"{i:03d}_age_{age:03d}.png")
                save_png(three_channels(y), out_dir / files[-1])
            rows.append({"caption": f"{name}: input, then ages {', '.join(map(str, ages))}", "files": files})
            continue
        for k in range(per_input):
            torch.manual_seed(seed + k)  # test-time dropout draws from the global RNG
            y = variant.sample(x[None], variant.noise(1, seed=seed + k))[0]
            files.append(f"{i:03d}_out_{k:02d}.png")
            save_png(three_channels(y), out_dir / files[-1])
        if target is not None:
            files.append(f"{i:03d}_target.png")
            save_png(three_channels(target), out_dir / files[-1])
        caption = f"{name}: input, {per_input} output(s)" + (", target" if target is not None else "")
        rows.append({"caption": caption, "files": files})
    index = {"variant": cfg.VARIANT, "checkpoint": str(path), "step": state["step"], "seed": seed, "rows": rows}
    title = f"{cfg.VARIANT} translations: {Path(path).name} (step {state['step']}, seed {seed})"
    finish_gallery(out_dir, index, _gallery_html(title, rows, None))
    return out_dir
