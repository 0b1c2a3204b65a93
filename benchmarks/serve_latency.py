"""Latency of `ganstack serve`: one image per request through the HTTP API, warm model.

    .venv/bin/python benchmarks/serve_latency.py                       # the default job's AttnGAN, CPU
    .venv/bin/python benchmarks/serve_latency.py --run attngan_shapes_single --device cuda --requests 100

Starts a real `ganstack serve` process on a free loopback port, sends --warmup requests (the model
loads), then --requests sequential POST /v1/runs/RUN/generate of one caption, count 1, each with its
own seed, and prints p50, p95 and the mean round trip in milliseconds as JSON.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as answer:
        return answer.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="output")
    ap.add_argument("--run", default="attngan_shapes_single", help="a text-to-image run (default: the default job's)")
    ap.add_argument("--caption", default="a red circle at the top")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if not (ROOT / args.runs / args.run / "checkpoints").is_dir() and not (Path(args.runs) / args.run).is_dir():
        sys.exit(f"--run {args.run}: no such run under {args.runs}; train one first (./train.sh)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ganstack", "serve", "--runs", args.runs, "--port", str(port),
                               "--device", args.device], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    url = f"http://127.0.0.1:{port}/v1/runs/{args.run}/generate"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/runs", timeout=5).read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"ganstack serve did not start: {server.stderr.read()[-1000:] if server.poll() else 'timeout'}")
                time.sleep(0.3)
        for seed in range(args.warmup):
            post(url, {"captions": [args.caption], "count": 1, "seed": seed})
        times = []
        for seed in range(args.requests):
            t0 = time.perf_counter()
            post(url, {"captions": [args.caption], "count": 1, "seed": 1000 + seed})
            times.append((time.perf_counter() - t0) * 1000)
    except urllib.error.HTTPError as e:
        sys.exit(f"the server refused the request: {e.code} {e.read().decode()[:300]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    times.sort()
    print(json.dumps({"run": args.run, "device": args.device, "requests": len(times),
                      "p50_ms": round(statistics.median(times), 1),
                      "p95_ms": round(times[max(0, int(round(0.95 * len(times))) - 1)], 1),
                      "mean_ms": round(statistics.fmean(times), 1)}))


if __name__ == "__main__":
    main()
