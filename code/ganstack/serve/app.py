"""The FastAPI application of `ganstack serve`: one HTML page and a JSON API (/docs) over the runs
of a folder. Every bad request is a 4xx whose body is {"error": "<one line>"}; never a 500."""
from __future__ import annotations

import base64
import binascii
import io
import threading
import uuid
import warnings
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ..errors import GanstackError
from ..visual import png_bytes
from . import models, page
from .limits import Limits
from .runs import Run, checkpoint_summary, find_run, find_runs


class Failure(BaseModel):
    error: str = Field(description="what was wrong, in one line")


class LayoutObject(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored
    label: str | int = Field(description="a class name of the run's dataset, or its number")
    box: list[float] = Field(min_length=4, max_length=4, description="[x, y, w, h], normalised to the image")


class Layout(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored
    caption: str
    objects: list[LayoutObject] = []


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored
    captions: list[str] | None = Field(None, description="text-to-image runs: the captions to draw")
    layouts: list[Layout] | None = Field(None, description="OP-GAN runs: captions with the boxes to draw them in")
    image: str | None = Field(None, description="image-to-image runs: the input image, base64 PNG or JPEG")
    checkpoints: list[str] | None = Field(None, description="checkpoint names (default: the latest), side by side")
    count: int = Field(1, ge=1, description="images per caption, layout or input image")
    seed: int = Field(0, ge=0, le=2 ** 31 - 1, description="the same seed gives the same images")
    truncation: float = Field(0.0, ge=0.0, le=100.0, description="redraw noise beyond +-T; 0 = none")
    attention: bool = Field(False, description="AttnGAN: also each caption's per-word attention maps")
    ages: list[int] | None = Field(None, description="face aging runs: an aging strip, the input face at each age "
                                                     "(instead of count outputs)")
    output: Literal["base64", "url"] = "base64"


class GeneratedImage(BaseModel):
    checkpoint: str
    step: int | None
    input_index: int = Field(description="which caption, layout or input image")
    sample_index: int
    label: str = Field(description="the caption, or what the image shows")
    kind: Literal["image", "layout", "attention", "input"]
    png_base64: str | None = None
    url: str | None = None


class GenerateResponse(BaseModel):
    run: str
    variant: str
    seed: int
    images: list[GeneratedImage]


class CheckpointInfo(BaseModel):
    name: str
    step: int | None


class RunInfo(BaseModel):
    name: str
    variant: str
    dataset: str
    kind: Literal["text", "layout", "image"]
    ages: bool = Field(description="whether the run draws aging strips (`ages` in generate)")
    checkpoints: list[CheckpointInfo]
    has_eval: bool
    has_gallery: bool
    labels: list[str] | None = None


class EvalReport(BaseModel):
    run: str
    file: str
    report: dict


ERRORS = {code: {"model": Failure} for code in (400, 404, 409, 413, 422, 429)}


def one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def create_app(runs_dir: str | Path, *, device: str = "cpu", limits: Limits | None = None,
               precision: str = "fp32") -> FastAPI:
    root, limits = Path(runs_dir), limits or Limits()
    cache = models.ModelCache(limits.cached_models, device, precision)
    slots = threading.BoundedSemaphore(limits.concurrent)
    kept: OrderedDict[str, bytes] = OrderedDict()
    kept_lock = threading.Lock()

    app = FastAPI(title="ganstack", version="1",
                  description="Images from the trained runs of a ganstack output folder. Errors are "
                              "{\"error\": \"<one line>\"} with a 4xx status.")

    def fail(status: int, message: str):
        raise HTTPException(status, one_line(message))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"error": one_line(f"{where}: {first.get('msg', 'invalid')}")}, status_code=422)

    def run_or_404(name: str) -> Run:
        try:
            return find_run(root, name)
        except LookupError as e:
            fail(404, str(e))

    def labels_of(run: Run) -> list[str] | None:
        if run.kind != "layout":
            return None
        from ..data.opgan import label_names
        try:
            cfg = run.config()
            return label_names(cfg.DATA_DIR, cfg.TEXT.CLASSES_NUM)
        except (GanstackError, OSError):
            return None

    def max_objects(run: Run) -> int:
        try:
            return run.config().MAX_OBJECTS
        except GanstackError:
            return 0

    # ------------------------------------------------------------------ page
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(run: str | None = None):
        runs = find_runs(root)
        chosen = next((r for r in runs if r.name == run), None)
        info = None
        if chosen is not None:
            info = {**chosen.summary(), "labels": labels_of(chosen), "eval": chosen.latest_eval(),
                    "attention": chosen.has_attention, "max_objects": max_objects(chosen)}
        return page.render(root, [r.summary() for r in runs], info, missing=run if run and chosen is None else None)

    @app.get("/runs/{run}/gallery/{path:path}", include_in_schema=False)
    def gallery(run: str, path: str):
        folder = (run_or_404(run).folder / "samples").resolve()
        target = (folder / (path or "index.html")).resolve()
        if folder not in target.parents or not target.is_file():
            fail(404, f"no file {path!r} in the gallery of run {run}")
        return FileResponse(target)

    # ------------------------------------------------------------------- API
    @app.get("/v1/runs", response_model=list[RunInfo], summary="the runs and their checkpoints")
    def list_runs():
        return [r.summary() for r in find_runs(root)]

    @app.get("/v1/runs/{run}", response_model=RunInfo, responses=ERRORS, summary="one run")
    def get_run(run: str):
        found = run_or_404(run)
        return {**found.summary(), "labels": labels_of(found)}

    @app.get("/v1/runs/{run}/checkpoints", response_model=list[CheckpointInfo], responses=ERRORS)
    def list_checkpoints(run: str):
        return [checkpoint_summary(p) for p in run_or_404(run).checkpoints()]

    @app.get("/v1/runs/{run}/eval", response_model=EvalReport, responses=ERRORS,
             summary="the run's latest `ganstack eval` report")
    def latest_eval(run: str):
        found = run_or_404(run)
        latest = found.latest_eval()
        if latest is None:
            fail(404, f"run {run} has no eval report yet: run `ganstack eval` on it")
        return {"run": run, "file": latest[0], "report": latest[1]}

    @app.get("/v1/images/{image_id}.png", responses={200: {"content": {"image/png": {}}}, 404: {"model": Failure}},
             response_class=Response, summary="a generated image (output=url)")
    def kept_image(image_id: str):
        with kept_lock:
            data = kept.get(image_id)
        if data is None:
            fail(404, f"no image {image_id}: generated images are kept for the last {limits.kept_images} only")
        return Response(data, media_type="image/png")

    @app.post("/v1/runs/{run}/generate", response_model=GenerateResponse, responses=ERRORS,
              summary="images from one or more checkpoints of a run")
    async def generate(run: str, body: GenerateRequest):
        found = run_or_404(run)
        inputs = check_request(found, body)
        checkpoints = chosen_checkpoints(found, body.checkpoints)
        per_checkpoint = inputs * body.count + (inputs if body.attention else 0)
        if found.kind == "layout":
            per_checkpoint += inputs * body.count  # each image again with its boxes drawn
        if found.kind == "image":
            per_checkpoint += 1  # the input as read
            if body.ages:
                per_checkpoint = 1 + len(body.ages)
        if per_checkpoint * len(checkpoints) > limits.images:
            fail(413, f"{per_checkpoint * len(checkpoints)} images asked for ({inputs} input(s) x count {body.count} "
                      f"x {len(checkpoints)} checkpoint(s)); at most {limits.images} per request")
        if not slots.acquire(blocking=False):
            fail(429, f"{limits.concurrent} generations are running; try again shortly")
        try:
            drawn = await run_in_threadpool(draw, found, checkpoints, body)
        finally:
            slots.release()
        images = []
        for d in drawn:
            item = {k: v for k, v in asdict(d).items() if k != "png"}
            if body.output == "url":
                image_id = uuid.uuid4().hex
                with kept_lock:
                    kept[image_id] = d.png
                    while len(kept) > limits.kept_images:
                        kept.popitem(last=False)
                item["url"] = f"/v1/images/{image_id}.png"
            else:
                item["png_base64"] = models.b64(d.png)
            images.append(item)
        return {"run": run, "variant": found.variant, "seed": body.seed, "images": images}

    def check_request(run: Run, body: GenerateRequest) -> int:
        """The number of inputs; a 4xx for what this run cannot take or a limit forbids."""
        given = {"captions": body.captions is not None, "layouts": body.layouts is not None,
                 "image": body.image is not None}
        wanted = {"text": "captions", "layout": "layouts", "image": "image"}[run.kind]
        extra = [k for k, v in given.items() if v and k != wanted and not (run.kind == "layout" and k == "captions")]
        if extra or not any(given.values()):
            fail(400, f"run {run.name} ({run.variant}) takes {wanted}" +
                 (" (or captions, drawn with no objects)" if run.kind == "layout" else "") +
                 (f", not {', '.join(extra)}" if extra else ""))
        if body.ages is not None and not run.ages_faces:
            fail(400, f"ages: run {run.name} ({run.variant}) does not age faces (aging_cycle, aging_conditional do)")
        if body.ages is not None and (not body.ages or any(not 0 <= a <= 150 for a in body.ages)):
            fail(400, "ages: give ages from 0 to 150, e.g. [20, 40, 60]")
        if body.attention and not run.has_attention:
            fail(400, f"attention: run {run.name} ({run.variant}) has no word attention (AttnGAN has)")
        texts = (body.captions or []) + [layout.caption for layout in body.layouts or []]
        for text in texts:
            if len(text) > limits.caption_chars:
                fail(413, f"a caption of {len(text)} characters; at most {limits.caption_chars}")
            if not text.strip():
                fail(400, "an empty caption; write what to draw")
        count = len(texts) if run.kind != "image" else 1
        if count > limits.inputs:
            fail(413, f"{count} inputs; at most {limits.inputs} per request")
        if count == 0:
            fail(400, f"no {wanted} given; give at least one")
        return count

    def chosen_checkpoints(run: Run, names: list[str] | None) -> list:
        available = run.checkpoints()
        if not available:
            fail(409, f"run {run.name} has no checkpoint yet: train it first")
        if not names:
            return [available[-1]]
        if len(names) > limits.images:
            fail(413, f"{len(names)} checkpoints; at most {limits.images} images per request")
        try:
            return [run.checkpoint(name) for name in dict.fromkeys(names)]
        except LookupError as e:
            fail(404, str(e))

    def decoded_image(text: str) -> tuple[bytes, str]:
        """The uploaded bytes and the file suffix of their format, after the size limits."""
        if len(text) > limits.image_bytes * 4 // 3 + 8:
            fail(413, f"image: over {limits.image_bytes} bytes")
        try:
            data = base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
        except (binascii.Error, ValueError):
            fail(400, "image: not base64; send the file's bytes base64-encoded")
        if len(data) > limits.image_bytes:
            fail(413, f"image: {len(data)} bytes; at most {limits.image_bytes}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    size, kind = im.size, im.format
                    if size[0] * size[1] > limits.image_pixels:
                        fail(413, f"image: {size[0]} x {size[1]} pixels; at most {limits.image_pixels} in all")
                    im.load()
        except HTTPException:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            fail(400, "image: not a readable image; send a PNG or JPEG")
        if kind not in ("PNG", "JPEG"):
            fail(400, f"image: {kind} is not accepted; send a PNG or JPEG")
        return data, ".png" if kind == "PNG" else ".jpg"

    def draw(run: Run, checkpoints: list, body: GenerateRequest) -> list[models.Drawn]:
        image = decoded_image(body.image) if run.kind == "image" else None
        layouts = None
        if run.kind == "layout":
            from ..data.opgan import parse_layouts
            raw = [layout.model_dump() for layout in body.layouts or []]
            raw += [{"caption": caption, "objects": []} for caption in body.captions or []]
            try:
                cfg = run.config()
                layouts = parse_layouts(raw, labels_of(run) or [], cfg.MAX_OBJECTS, "layouts")
            except GanstackError as e:
                fail(400, str(e))
        out = []
        for checkpoint in checkpoints:
            try:
                variant, step = cache.get(run, checkpoint)
            except GanstackError as e:
                fail(409, f"{checkpoint.name} of run {run.name} cannot be loaded: {e}")
            name = checkpoint.name
            try:
                with models.seeded(body.seed):
                    out += draw_one(variant, name, step, body, image, layouts)
            except GanstackError as e:
                fail(400, str(e))
        return out

    def draw_one(variant, name, step, body, image, layouts) -> list[models.Drawn]:
        out = []
        if image is not None and body.ages:
            shown, strip = models.draw_age_strip(variant, image[0], image[1], body.ages)
            out.append(models.Drawn(name, step, 0, 0, "input as read", png_bytes(shown), "input"))
            out += [models.Drawn(name, step, 0, k, f"age {age}", png_bytes(y)) for k, (age, y) in
                    enumerate(zip(body.ages, strip))]
            return out
        if image is not None:
            shown, outputs = models.draw_from_image(variant, image[0], image[1], body.count, body.seed)
            out.append(models.Drawn(name, step, 0, 0, "input as read", png_bytes(shown), "input"))
            out += [models.Drawn(name, step, 0, k, f"output {k}", png_bytes(y)) for k, y in enumerate(outputs)]
            return out
        if layouts is not None:
            captions, plain, boxed = models.draw_layouts(variant, layouts, body.count, body.seed, body.truncation)
            for i, caption in enumerate(captions):
                out += [models.Drawn(name, step, i, k, caption, png_bytes(x)) for k, x in enumerate(plain[i])]
                out += [models.Drawn(name, step, i, k, caption, png_bytes(x), "layout")
                        for k, x in enumerate(boxed[i])]
            return out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown words are dropped, as `ganstack sample` warns
            drawn = models.draw_text(variant, body.captions, body.count, body.seed, body.truncation)
        for i, caption in enumerate(body.captions):
            out += [models.Drawn(name, step, i, k, caption, png_bytes(x)) for k, x in enumerate(drawn[i])]
            if body.attention:
                strip = models.draw_attention(variant, caption, body.seed + i, body.truncation)
                out.append(models.Drawn(name, step, i, 0, caption, png_bytes(strip), "attention"))
        return out

    app.state.limits, app.state.cache = limits, cache
    return app
