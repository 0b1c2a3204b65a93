"""`ganstack serve`: the JSON API through FastAPI's test client, its limits, the page, and a real
uvicorn process. Runs are trained here for a few steps on the fault suite's shapes set."""
from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT
from ganstack.cli import main

fastapi = pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from ganstack.serve.app import create_app  # noqa: E402
from ganstack.serve.limits import Limits  # noqa: E402


def png_b64(size=(32, 32), colour=(200, 30, 30), fmt="PNG") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def train(cfg: Path, runs: Path, name: str, *sets: str) -> None:
    assert main(["train", str(cfg), "--device", "cpu", "--set", f"OUTPUT_DIR={runs}", "--set", f"RUN_NAME={name}",
                 "--set", "TRAIN.MAX_STEPS=2", "--set", "TRAIN.SNAPSHOT_INTERVAL=1", *sets]) == 0


@pytest.fixture(scope="module")
def runs(workspace, tmp_path_factory) -> Path:
    """attn (AttnGAN, checkpoints at steps 1 and 2, an eval report), p2p (pix2pix), op (OP-GAN),
    empty (a config, no checkpoint) and broken (its only checkpoint damaged)."""
    root = tmp_path_factory.mktemp("serve_runs")
    train(workspace.cfgs["attngan"], root, "attn")
    train(workspace.cfgs["pix2pix"], root, "p2p")
    net_e = workspace.root / "output" / "encoders" / "text_encoder.pth"
    op = root.parent / "opgan.yml"
    op.write_text("\n".join([
        f"_BASE_: {ROOT / 'cfg/opgan/shapes.yml'}", f"DATA_DIR: {workspace.root / 'shapes'}", "WORKERS: 0",
        "SHAPES: {LEVEL: single}",
        f"TRAIN: {{BATCH_SIZE: 6, PRECISION: fp32, LOG_INTERVAL: 1, IMAGE_INTERVAL: 100, NET_E: '{net_e}'}}",
        "TREE: {BRANCH_NUM: 2, BASE_SIZE: 32}",
        "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16, Z_DIM: 16, R_NUM: 1, LOCAL_Z_DIM: 8, INIT_LABEL_DIM: 16, "
        "NEXT_LABEL_DIM: 16}",
        "TEXT: {CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 24, EMBEDDING_DIM: 32, WORD_EMB_DIM: 16, CLASSES_NUM: 37}"]) + "\n")
    train(op, root, "op")
    faces = root.parent / "faces"
    assert main(["prepare", "faces", "--out", str(faces), "--num-train", "4", "--num-test", "2", "--size", "32"]) == 0
    aging = root.parent / "aging.yml"
    aging.write_text("\n".join([
        f"_BASE_: {ROOT / 'cfg/aging_cycle/faces.yml'}", f"DATA_DIR: {faces}", "WORKERS: 0",
        "TRAIN: {BATCH_SIZE: 2, PRECISION: fp32, LOG_INTERVAL: 1, IMAGE_INTERVAL: 100}",
        "DATA: {LOAD_SIZE: 36, CROP_SIZE: 32}", "AGING: {NGF: 4, NDF: 4, N_BLOCKS: 1}"]) + "\n")
    train(aging, root, "age")
    (root / "attn" / "eval").mkdir()
    (root / "attn" / "eval" / "checkpoint_00000002.json").write_text(json.dumps(
        {"step": 2, "judge": {"colour_accuracy": 0.25}, "images": 8}))
    shutil.copytree(root / "attn", root / "empty", ignore=shutil.ignore_patterns("checkpoints"))
    shutil.copytree(root / "attn", root / "broken")
    for path in (root / "broken" / "checkpoints").iterdir():
        path.write_bytes(b"not a checkpoint")
    (root / "notes").mkdir()  # a folder that is no run
    return root


@pytest.fixture(scope="module")
def client(runs) -> TestClient:
    return TestClient(create_app(runs, limits=Limits(caption_chars=80, inputs=3, images=12, image_bytes=20000,
                                                     image_pixels=256 * 256, cached_models=2)))


def post(client, run: str, **body):
    return client.post(f"/v1/runs/{run}/generate", json=body)


def test_lists_runs_checkpoints_and_eval_reports(client):
    listed = {r["name"]: r for r in client.get("/v1/runs").json()}
    assert set(listed) == {"attn", "p2p", "op", "age", "empty", "broken"}
    assert (listed["age"]["kind"], listed["age"]["ages"], listed["p2p"]["ages"]) == ("image", True, False)
    assert (listed["attn"]["variant"], listed["attn"]["kind"]) == ("attngan", "text")
    assert (listed["p2p"]["kind"], listed["op"]["kind"]) == ("image", "layout")
    assert [c["step"] for c in listed["attn"]["checkpoints"]] == [1, 2] and listed["empty"]["checkpoints"] == []
    assert client.get("/v1/runs/op").json()["labels"][:2] == ["red circle", "green circle"]
    assert [c["name"] for c in client.get("/v1/runs/attn/checkpoints").json()] == [
        "checkpoint_00000001.pth", "checkpoint_00000002.pth"]
    report = client.get("/v1/runs/attn/eval").json()
    assert report["file"] == "checkpoint_00000002.json" and report["report"]["judge"]["colour_accuracy"] == 0.25
    missing = client.get("/v1/runs/p2p/eval")
    assert missing.status_code == 404 and "no eval report" in missing.json()["error"]
    assert client.get("/v1/runs/nope").status_code == 404


def test_text_to_image_from_checkpoints_side_by_side_is_reproducible(client):
    body = dict(captions=["a red circle", "a blue square"], count=2, seed=3,
                checkpoints=["checkpoint_00000001.pth", "checkpoint_00000002"])
    first = post(client, "attn", **body)
    assert first.status_code == 200, first.text
    images = first.json()["images"]
    assert [(i["checkpoint"], i["input_index"], i["sample_index"]) for i in images][:4] == [
        ("checkpoint_00000001.pth", 0, 0), ("checkpoint_00000001.pth", 0, 1),
        ("checkpoint_00000001.pth", 1, 0), ("checkpoint_00000001.pth", 1, 1)]
    assert {i["step"] for i in images} == {1, 2} and len(images) == 8
    pictures = [Image.open(io.BytesIO(base64.b64decode(i["png_base64"]))) for i in images]
    assert all(p.format == "PNG" and p.size == (64, 64) for p in pictures)
    again = post(client, "attn", **body).json()["images"]
    assert [i["png_base64"] for i in again] == [i["png_base64"] for i in images]  # same seed, same images
    other = post(client, "attn", **{**body, "seed": 4}).json()["images"]
    assert other[0]["png_base64"] != images[0]["png_base64"]
    # default: the latest checkpoint; URLs instead of base64
    latest = post(client, "attn", captions=["a red circle"], output="url").json()["images"]
    assert [i["checkpoint"] for i in latest] == ["checkpoint_00000002.pth"] and latest[0]["png_base64"] is None
    fetched = client.get(latest[0]["url"])
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert client.get("/v1/images/nope.png").status_code == 404


def test_attention_maps_for_attngan_only(client):
    images = post(client, "attn", captions=["a red circle"], attention=True).json()["images"]
    assert [i["kind"] for i in images] == ["image", "attention"]
    refused = post(client, "p2p", image=png_b64(), attention=True)
    assert refused.status_code == 400 and "attention" in refused.json()["error"]


def test_image_to_image_takes_an_upload_and_gives_k_outputs(client):
    answer = post(client, "p2p", image=png_b64(), count=2)
    assert answer.status_code == 200, answer.text
    assert [(i["kind"], i["sample_index"]) for i in answer.json()["images"]] == [("input", 0), ("image", 0), ("image", 1)]
    jpeg = post(client, "p2p", image="data:image/jpeg;base64," + png_b64(fmt="JPEG"))
    assert jpeg.status_code == 200


def test_aging_runs_draw_aging_strips(client):
    answer = post(client, "age", image=png_b64(), ages=[25, 70])
    assert answer.status_code == 200, answer.text
    assert [(i["kind"], i["label"]) for i in answer.json()["images"]] == [
        ("input", "input as read"), ("image", "age 25"), ("image", "age 70")]
    outside = post(client, "age", image=png_b64(), ages=[40])
    assert outside.status_code == 400 and "in neither AGING.DOMAIN_A" in outside.json()["error"]
    refused = post(client, "p2p", image=png_b64(), ages=[25])
    assert refused.status_code == 400 and "does not age faces" in refused.json()["error"]
    assert "id='ages'" in client.get("/?run=age").text


def test_layouts_for_opgan_draw_the_boxes(client):
    layout = {"caption": "a red circle", "objects": [{"label": "red circle", "box": [0.1, 0.2, 0.5, 0.5]}]}
    answer = post(client, "op", layouts=[layout], count=2)
    assert answer.status_code == 200, answer.text
    assert [i["kind"] for i in answer.json()["images"]] == ["image", "image", "layout", "layout"]
    plain = post(client, "op", captions=["a red circle"])  # captions alone: no objects
    assert plain.status_code == 200
    bad = post(client, "op", layouts=[{"caption": "x", "objects": [{"label": "purple moon", "box": [0, 0, 1, 1]}]}])
    assert bad.status_code == 400 and "unknown label 'purple moon'" in bad.json()["error"]
    outside = post(client, "op", layouts=[{"caption": "a red circle",
                                          "objects": [{"label": 0, "box": [0.8, 0.8, 0.5, 0.5]}]}])
    assert outside.status_code == 400 and "outside [0, 1]" in outside.json()["error"]


@pytest.mark.parametrize("run, body, status, words", [
    ("attn", {"captions": ["a red circle " * 10]}, 413, "at most 80"),
    ("attn", {"captions": ["a", "b", "c", "d"]}, 413, "at most 3 per request"),
    ("attn", {"captions": ["a red circle"], "count": 13}, 413, "at most 12 per request"),
    ("attn", {"captions": ["   "]}, 400, "empty caption"),
    ("attn", {"captions": ["zzz qqq"]}, 400, "none of its words"),
    ("attn", {"captions": []}, 400, "no captions"),
    ("attn", {"image": png_b64()}, 400, "takes captions, not image"),
    ("attn", {"captions": ["a red circle"], "checkpoints": ["checkpoint_00000009.pth"]}, 404, "no checkpoint"),
    ("attn", {"captions": ["a red circle"], "seed": -1}, 422, "seed"),
    ("attn", {"captions": "a red circle"}, 422, "captions"),
    ("attn", {}, 400, "takes captions"),
    ("p2p", {"captions": ["a red circle"]}, 400, "takes image"),
    ("p2p", {"image": "%%% not base64"}, 400, "not base64"),
    ("p2p", {"image": base64.b64encode(b"GIF89a but not really").decode()}, 400, "not a readable image"),
    ("p2p", {"image": png_b64(size=(300, 300))}, 413, "pixels"),
    ("p2p", {"image": base64.b64encode(b"\0" * 30000).decode()}, 413, "bytes"),
    ("p2p", {"image": png_b64(fmt="GIF")}, 400, "GIF is not accepted"),
    ("empty", {"captions": ["a red circle"]}, 409, "no checkpoint yet"),
    ("broken", {"captions": ["a red circle"]}, 409, "cannot be loaded"),
    ("nope", {"captions": ["a red circle"]}, 404, "no run 'nope'"),
])
def test_bad_requests_are_4xx_with_one_line(client, run, body, status, words):
    answer = post(client, run, **body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert words in error and "\n" not in error and "Traceback" not in error


def test_malformed_json_and_wrong_content_are_one_line_422(client):
    for content in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        answer = client.post("/v1/runs/attn/generate", content=content, headers={"content-type": "application/json"})
        assert answer.status_code == 422 and "\n" not in answer.json()["error"]


def test_concurrent_requests_beyond_the_limit_get_429_and_the_server_answers_after(runs):
    app = create_app(runs, limits=Limits(concurrent=1))
    client = TestClient(app)
    statuses = []

    def ask():
        statuses.append(post(client, "attn", captions=["a red circle"], count=4).status_code)
    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 429} and 200 in statuses
    assert post(client, "attn", captions=["a red circle"]).status_code == 200


def test_loaded_generators_are_a_bounded_lru_cache(runs):
    app = create_app(runs, limits=Limits(cached_models=1))
    client = TestClient(app)
    for name in ("checkpoint_00000001.pth", "checkpoint_00000002.pth"):
        assert post(client, "attn", captions=["a red circle"], checkpoints=[name]).status_code == 200
    assert app.state.cache.loaded() == [("attn", "checkpoint_00000002.pth")]


def test_the_page_lists_runs_and_shows_the_run_form(client, tmp_path):
    page = client.get("/").text
    assert "<table id='runs'>" in page and "/?run=attn" in page and "report</a>" in page
    form = client.get("/?run=attn").text
    assert "checkpoint_00000001.pth" in form and "id='caption'" in form and "id='attention'" in form
    assert "colour_accuracy" in form  # the latest eval report as a table
    assert "<canvas id='layout'" in client.get("/?run=op").text
    assert "type='file' id='image'" in client.get("/?run=p2p").text
    assert "No run nope here" in client.get("/?run=nope").text
    empty = TestClient(create_app(tmp_path)).get("/").text
    assert "No runs here yet" in empty


def test_the_gallery_is_served_inside_the_run_folder_only(client, runs):
    (runs / "attn" / "samples").mkdir(exist_ok=True)
    (runs / "attn" / "samples" / "index.html").write_text("<p>gallery</p>")
    assert client.get("/runs/attn/gallery/index.html").text == "<p>gallery</p>"
    assert client.get("/runs/attn/gallery/../config.yml").status_code == 404
    assert client.get("/runs/attn/gallery/%2e%2e/config.yml").status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_runs_uvicorn_on_loopback(runs, capsys):
    assert main(["serve", "--runs", str(runs / "missing")]) == 2
    assert "--runs" in capsys.readouterr().err
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ganstack", "serve", "--runs", str(runs), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_server(proc, port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/runs", timeout=5) as r:
            assert "attn" in {run["name"] for run in json.load(r)}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=5) as r:
            assert b"swagger" in r.read().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert f"on http://127.0.0.1:{port}/" in proc.stdout.read()


# ------------------------------------------------------------------ schema-driven property tests
def test_api_property_no_5xx_and_every_response_fits_the_schema(runs):
    """Schemathesis draws requests for every operation of the OpenAPI schema (bodies, path and query
    values, valid and not); every answer must be below 500 and match the schema of its status. Half
    the drawn run names are replaced by existing runs, so generation is reached, not only the 404s."""
    schemathesis = pytest.importorskip("schemathesis", reason="the API property tests need schemathesis")
    from hypothesis import HealthCheck, given, settings, strategies as st

    app = create_app(runs, limits=Limits(caption_chars=60, inputs=2, images=6, image_bytes=4096, image_pixels=64 * 64))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                     response_schema_conformance, status_code_conformance)
    # not positive_data_acceptance: a schema-valid request may still be refused with a 4xx naming why
    # (captions sent to an image-to-image run, a checkpoint that does not exist)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              negative_data_rejection]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/runs", "/v1/runs/{run}/generate", "/v1/runs/{run}/eval"}
    for operation in operations:
        @given(case=operation.as_strategy(), run=st.sampled_from([None, "attn", "p2p", "op", "empty", "broken"]))
        @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case, run):
            if run is not None and "run" in (case.path_parameters or {}):
                case.path_parameters["run"] = run
            case.call_and_validate(checks=checks)
        check()


# ------------------------------------------------------------------ a real browser
CHROMIUM = [p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome") if Path(p).exists()]
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.skipif(not CHROMIUM or not CHROMEDRIVER,
                    reason="no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver; "
                           ".ci/run installs them)")
def test_the_page_in_headless_chromium_generates_from_every_checkpoint(runs):
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ganstack", "serve", "--runs", str(runs), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    browser = None
    try:
        wait_for_server(server, port)
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element(By.LINK_TEXT, "attn").click()
        caption = browser.find_element(By.ID, "caption")
        caption.clear()
        caption.send_keys("a red circle")
        count = browser.find_element(By.ID, "count")
        count.clear()
        count.send_keys("2")
        browser.find_element(By.ID, "generate").click()
        WebDriverWait(browser, 120).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#grid img.generated")) >= 4
                                          or "error" in b.find_element(By.ID, "status").get_attribute("class"))
        assert browser.find_element(By.ID, "status").get_attribute("class") != "error", \
            browser.find_element(By.ID, "status").text
        columns = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#grid th.checkpoint")]
        assert columns == ["checkpoint_00000001.pth (step 1)", "checkpoint_00000002.pth (step 2)"]
        images = browser.find_elements(By.CSS_SELECTOR, "#grid img.generated")
        assert len(images) == 4 and all(browser.execute_script("return arguments[0].naturalWidth", i) == 64
                                        for i in images)
        shot = ROOT / "output" / "serve_browser_test.png"  # for a person to look at
        shot.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(timeout=30)


def wait_for_server(proc: subprocess.Popen, port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/runs", timeout=5):
                return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"ganstack serve exited: {proc.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "ganstack serve did not answer within a minute"
            time.sleep(0.3)
