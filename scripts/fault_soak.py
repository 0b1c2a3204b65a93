#!/usr/bin/env python
"""Fault soak: training runs of every variant family under injected faults, many times.

    .venv/bin/python scripts/fault_soak.py --runs 20
    .venv/bin/python scripts/fault_soak.py --runs 5 --scenarios kill,ddp --families damsm,pix2pix --json soak.json

Each case trains a small CPU config of one family (DAMSM, AttnGAN, GAN-INT-CLS, pix2pix) on a
freshly generated shapes set, in real `ganstack train` processes, and checks what the framework
promises (README, "Reliability"):

  kill      kill -9 of the whole process group at a random moment (checkpoints every step, so
            many kills land inside a checkpoint write), resumed until done, several times per
            run: the final weights and EMA are bit-identical to an uninterrupted run and no
            temporary file is left in the run folder.
  disk      the checkpoint write fails (a file-size limit, `ulimit -f`, below the checkpoint's
            size): one line naming the folder and the intact previous checkpoint, exit 2, no step
            trained after the failed write, no temporary file; resuming without the limit ends
            bit-identical to an uninterrupted run.
  damaged   the latest checkpoint truncated, emptied or with one flipped byte: resume names it,
            renames it *.damaged, continues from the previous one and ends bit-identical to an
            uninterrupted run; --resume of the damaged file itself is a one-line error.
  ddp       two torchrun processes, rank 1 killed (SIGKILL) mid-training: rank 0 stops within
            DDP_BOUND_S seconds with one line naming rank 1, and the run resumes.

The tests in tests/faults/ run a few of these cases on every test run; this script runs many.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("damsm", "attngan", "gan_int_cls", "pix2pix")
SCENARIOS = ("kill", "disk", "damaged", "ddp")
STEPS = 12             # training steps of every case
KILLS_PER_RUN = 3      # kill -9 cycles before a run may finish
DDP_BOUND_S = 60.0     # rank 0 must be gone this long after rank 1 dies
PROCESS_TIMEOUT_S = 300


def _config_lines(family: str, root: Path) -> list[str]:
    data, net_e = root / "shapes", root / "output" / "encoders" / "text_encoder.pth"
    common = [f"OUTPUT_DIR: {root / 'output'}", "WORKERS: 0", "SEED: 0", "SHAPES: {LEVEL: single}"]
    text = "TEXT: {CAPTIONS_PER_IMAGE: 10, WORDS_NUM: 24, EMBEDDING_DIM: 32, WORD_EMB_DIM: 16}"
    train = f"BATCH_SIZE: 6, MAX_STEPS: {STEPS}, SNAPSHOT_INTERVAL: 100, LOG_INTERVAL: 1, IMAGE_INTERVAL: 1000"
    if family == "damsm":
        return [f"_BASE_: {ROOT / 'cfg/damsm/_base.yml'}", "DATASET_NAME: shapes", f"DATA_DIR: {data}", *common,
                "TREE: {BASE_SIZE: 32}", f"TRAIN: {{{train}, FLIP: false}}", text,
                "DAMSM: {IMAGE_ENCODER: cnn, CNN_DIM: 8}", "EVAL: {R_PRECISION_CANDIDATES: 4, R_PRECISION_RUNS: 2}"]
    if family == "attngan":
        return [f"_BASE_: {ROOT / 'cfg/attngan/_base.yml'}", "DATASET_NAME: shapes", f"DATA_DIR: {data}", *common,
                "TREE: {BRANCH_NUM: 2, BASE_SIZE: 32}", f"TRAIN: {{{train}, FLIP: false, NET_E: '{net_e}'}}",
                "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16, Z_DIM: 16, R_NUM: 1}", text]
    if family == "gan_int_cls":
        return [f"_BASE_: {ROOT / 'cfg/gan_int_cls/_base.yml'}", "DATASET_NAME: shapes", f"DATA_DIR: {data}",
                *common, "TREE: {BASE_SIZE: 32}", f"TRAIN: {{{train}, FLIP: false, NET_E: '{net_e}'}}",
                "GAN: {GF_DIM: 8, DF_DIM: 8, CONDITION_DIM: 16}", text]
    if family == "pix2pix":
        return [f"_BASE_: {ROOT / 'cfg/pix2pix/_base.yml'}", "DATASET_NAME: shapes_aligned",
                f"DATA_DIR: {root / 'shapes_aligned'}", *common, f"TRAIN: {{{train}}}",
                "DATA: {PREPROCESS: resize_and_crop, LOAD_SIZE: 36, CROP_SIZE: 32}",
                "PIX2PIX: {NGF: 8, NDF: 8, N_LAYERS_D: 2}"]
    raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")


@dataclass
class Outcome:
    scenario: str
    family: str
    ok: bool
    detail: str
    seconds: float
    counts: dict = field(default_factory=dict)  # e.g. kills, kills inside a checkpoint write


class CaseFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


class Workspace:
    """A shapes set (and its aligned pairs), one config per family and the text encoder the
    text-to-image families need (a short DAMSM run of the damsm config), under `root`."""

    def __init__(self, root: Path, device: str = "cpu", sets: tuple[str, ...] = ()):
        from ganstack.data.synthetic.shapes import prepare_shapes
        from ganstack.data.synthetic.shapes_aligned import export_aligned
        self.root, self.device, self.sets = Path(root), device, tuple(sets)
        self.root.mkdir(parents=True, exist_ok=True)
        prepare_shapes(self.root / "shapes", level="single", num_train=24, num_test=8, size=64, seed=0)
        export_aligned(self.root / "shapes", self.root / "shapes_aligned")
        self.cfgs = {}
        for family in FAMILIES:
            path = self.root / f"{family}.yml"
            path.write_text("\n".join(_config_lines(family, self.root)) + "\n")
            self.cfgs[family] = path
        self._references: dict[str, tuple[dict, float]] = {}
        self._runs = 0
        if not (self.root / "output/encoders/text_encoder.pth").is_file():
            done = self.train("damsm", "encoders", "TRAIN.MAX_STEPS=4")
            check(done.returncode == 0, f"the DAMSM run for the text encoder failed: {done.stderr[-500:]}")

    # ------------------------------------------------------------------ processes
    def command(self, family: str, run: str, *sets: str, extra: tuple[str, ...] = (),
                device: str | None = None) -> list[str]:
        cmd = [sys.executable, "-m", "ganstack", "train", str(self.cfgs[family]), "--device", device or self.device,
               "--set", f"RUN_NAME={run}", *extra]
        for s in (*self.sets, *sets):
            cmd += ["--set", s]
        return cmd

    def popen(self, cmd: list[str], log: Path, fsize: int | None = None) -> subprocess.Popen:
        def limits():
            os.setsid()  # its own process group: kill -9 reaches every process of the run
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1", PYTHONUNBUFFERED="1")  # torchrun's tee
        with open(log, "w") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                    preexec_fn=limits)

    def train(self, family: str, run: str, *sets: str, fsize: int | None = None,
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        log = self.run_dir(run).with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = self.popen(self.command(family, run, *sets, extra=extra), log, fsize)
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        return subprocess.CompletedProcess(proc.args, proc.returncode, log.read_text(), err)

    def run_dir(self, run: str) -> Path:
        return self.root / "output" / run

    def fresh(self, family: str, scenario: str) -> str:
        self._runs += 1
        return f"{family}_{scenario}_{self._runs:03d}"

    # ------------------------------------------------------------------ results
    def final(self, run: str) -> dict:
        from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
        state = load_checkpoint(latest_checkpoint(self.run_dir(run) / "checkpoints"))
        check(state["step"] == STEPS, f"{run} ended at step {state['step']}, not {STEPS}")
        return {"nets": state["nets"], "ema": state["ema"]}

    def reference(self, family: str) -> tuple[dict, float]:
        """The uninterrupted run's final nets and EMA, and its training seconds (step 1 to the last)."""
        if family not in self._references:
            run = f"{family}_reference"
            if not (self.run_dir(run) / "checkpoints").is_dir():
                log = self.run_dir(run).with_suffix(".log")
                log.parent.mkdir(parents=True, exist_ok=True)
                proc = self.popen(self.command(family, run), log)
                started = wait_for_step(proc, log, 1)
                seconds = wait_for_step(proc, log, STEPS) - started
                _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
                check(proc.returncode == 0, f"{family}: the uninterrupted run failed: {err[-800:]}")
                (self.run_dir(run) / "seconds.txt").write_text(f"{seconds}\n")
            seconds = float((self.run_dir(run) / "seconds.txt").read_text())
            self._references[family] = (self.final(run), seconds)
        return self._references[family]

    def assert_reference(self, family: str, run: str) -> None:
        reference, _ = self.reference(family)
        got = self.final(run)
        for part in ("nets", "ema"):
            for net, tensors in reference[part].items():
                if not hasattr(tensors, "items"):
                    continue
                for key, value in tensors.items():
                    check(bool((got[part][net][key] == value).all()),
                          f"{run}: {part} {net}.{key} differs from the uninterrupted run")


def wait_for_step(proc: subprocess.Popen, log: Path, step: int | None = None) -> float:
    """Block until the run logs `step` (None: any step; a resumed run starts past 1) or ends;
    returns the monotonic time it did."""
    mark, deadline = f"step {step} " if step else "step ", time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text() if log.is_file() else ""
        if any(line.split("]:", 1)[-1].startswith(mark) for line in text.splitlines()) or proc.poll() is not None:
            return time.monotonic()
        time.sleep(0.01)
    raise CaseFailed(f"no '{mark}' logged in {PROCESS_TIMEOUT_S} s")


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    check(len(lines) == 1, f"expected one error line, got {len(lines)}: {err[-800:]}")
    return lines[0]


# ---------------------------------------------------------------------- scenarios
def _resumed_step(folder: Path) -> int:
    from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
    last = latest_checkpoint(folder / "checkpoints")
    return load_checkpoint(last)["step"] if last else 0


def kill_resume(ws: Workspace, family: str, rng: random.Random, kills: int = KILLS_PER_RUN) -> dict:
    _, seconds = ws.reference(family)
    run = ws.fresh(family, "kill")
    folder = ws.run_dir(run)
    counts = {"kills": 0, "inside_checkpoint_write": 0, "processes": 0}
    while True:
        log = folder.with_suffix(f".{counts['processes']}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        resumed = _resumed_step(folder)
        proc = ws.popen(ws.command(family, run, "TRAIN.SNAPSHOT_INTERVAL=1", "TRAIN.KEEP_CHECKPOINTS=2"), log)
        counts["processes"] += 1
        if counts["kills"] < kills and resumed < STEPS:  # (killed after its last checkpoint: nothing left)
            # at a random step still to come, a random moment within about three steps' time (the
            # checkpoint each step writes included)
            wait_for_step(proc, log, rng.randint(resumed + 1, STEPS))
            time.sleep(rng.uniform(0, 3 * seconds / STEPS))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
                counts["kills"] += 1
                counts["inside_checkpoint_write"] += bool(leftovers(folder / "checkpoints"))
                continue
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        check(proc.returncode == 0, f"{run}: the resumed run failed (exit {proc.returncode}): {err[-800:]}")
        break
    ws.assert_reference(family, run)
    check(not leftovers(folder), f"{run}: temporary files left: {leftovers(folder)}")
    return counts


def stop_at(ws: Workspace, family: str, run: str, step: int, *sets: str) -> int:
    """Train until `step` is logged, then SIGTERM (as a scheduler does): the run writes its stop
    checkpoint and exits 143. Returns that checkpoint's step. (Shorter runs would need another
    TRAIN.MAX_STEPS, and with it another learning-rate schedule, so never the reference's weights.)"""
    from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
    log = ws.run_dir(run).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = ws.popen(ws.command(family, run, *sets), log)
    wait_for_step(proc, log, step)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    check(proc.returncode == 143, f"{run}: exit {proc.returncode} after SIGTERM: {err[-800:]}")
    return load_checkpoint(latest_checkpoint(ws.run_dir(run) / "checkpoints"))["step"]


def disk_full(ws: Workspace, family: str, rng: random.Random) -> dict:
    from ganstack.engine.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint
    run = ws.fresh(family, "disk")
    folder = ws.run_dir(run) / "checkpoints"
    stopped = stop_at(ws, family, run, 4, "TRAIN.SNAPSHOT_INTERVAL=2")
    intact = checkpoint_path(folder, stopped)
    size = intact.stat().st_size
    failing = min(STEPS, (stopped // 2 + 1) * 2)  # the next checkpoint
    limit = int(size * rng.uniform(0.2, 0.8))  # it cannot be written whole
    full = ws.train(family, run, "TRAIN.SNAPSHOT_INTERVAL=2", fsize=limit)
    check(full.returncode == 2, f"{run}: exit {full.returncode} under a {limit}-byte file limit: {full.stderr[-800:]}")
    line = one_line(full.stderr)
    for part in (str(folder), f"could not write the checkpoint of step {failing} ", f"{intact.name} is intact",
                 "ulimit -f"):
        check(part in line, f"{run}: the error does not say {part!r}: {line}")
    check(f"step {failing + 1} " not in full.stdout, f"{run}: training went on after the failed write")
    check(latest_checkpoint(folder) == intact and load_checkpoint(intact)["step"] == stopped,
          f"{run}: the previous checkpoint is not the intact latest one")
    check(not leftovers(ws.run_dir(run)), f"{run}: temporary files left: {leftovers(ws.run_dir(run))}")
    done = ws.train(family, run, "TRAIN.SNAPSHOT_INTERVAL=2")
    check(done.returncode == 0, f"{run}: resuming after the disk-full stop failed: {done.stderr[-800:]}")
    ws.assert_reference(family, run)
    return {"limit_bytes": limit, "checkpoint_bytes": size, "failed_at_step": failing}


DAMAGE = ("truncated", "empty", "flipped byte")


def damage(path: Path, rng: random.Random, how: str | None = None) -> str:
    data = bytearray(path.read_bytes())
    how = how or rng.choice(DAMAGE)
    if how == "truncated":
        data = data[:rng.randrange(1, len(data))]
    elif how == "empty":
        data = bytearray()
    else:
        data[rng.randrange(len(data) // 4, len(data) * 3 // 4)] ^= 0xFF  # inside the tensor records
    path.write_bytes(bytes(data))
    return how


def damaged_checkpoint(ws: Workspace, family: str, rng: random.Random, how: str | None = None) -> dict:
    from ganstack.engine.checkpoint import checkpoint_path, list_checkpoints
    run = ws.fresh(family, "damaged")
    folder = ws.run_dir(run) / "checkpoints"
    stopped = stop_at(ws, family, run, 6, "TRAIN.SNAPSHOT_INTERVAL=2")
    latest = checkpoint_path(folder, stopped)
    previous = [p for p in list_checkpoints(folder) if p != latest][-1]
    how = damage(latest, rng, how)
    aside = latest.with_name(latest.name + ".damaged")

    explicit = ws.train(family, run, extra=("--resume", str(latest)))
    check(explicit.returncode == 2 and str(latest) in one_line(explicit.stderr),
          f"{run}: --resume of the {how} checkpoint: exit {explicit.returncode}: {explicit.stderr[-800:]}")

    done = ws.train(family, run, "TRAIN.SNAPSHOT_INTERVAL=2")
    check(done.returncode == 0, f"{run}: resuming past the {how} checkpoint failed: {done.stderr[-800:]}")
    check(str(latest) in done.stderr and f"resuming from {previous.name}" in done.stderr,
          f"{run}: the {how} checkpoint was not named: {done.stderr[-800:]}")
    check(aside.is_file(), f"{run}: the damaged file was not kept as {aside.name}")
    ws.assert_reference(family, run)
    return {"damage": how}


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker with RANK=rank (a child of the launcher)."""
    children = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    for child in children:
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return int(child)
    return None


def ddp_worker_death(ws: Workspace, family: str, rng: random.Random) -> dict:
    run = ws.fresh(family, "ddp")
    logs = ws.run_dir(run).with_suffix(".torchrun")
    log = ws.run_dir(run).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    def torchrun(*sets: str, launcher: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *launcher,
                *ws.command(family, run, "TRAIN.BATCH_SIZE=4", *sets, device="cpu")[1:]]  # [1:]: without the python

    proc = ws.popen(torchrun("TRAIN.MAX_STEPS=100000", "TRAIN.SNAPSHOT_INTERVAL=2",
                             launcher=("--log-dir", str(logs), "--tee", "3")), log)
    at = rng.randrange(2, 9)
    try:
        wait_for_step(proc, log, at)
        victim = _rank_pid(proc.pid, 1)
        if victim is None or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            raise CaseFailed(f"{run}: rank 1 not found under torchrun (exit {proc.returncode}): {err[-600:]}")
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        proc.communicate(timeout=DDP_BOUND_S)
    except subprocess.TimeoutExpired:
        raise CaseFailed(f"{run}: still running {DDP_BOUND_S:.0f} s after rank 1 died") from None
    finally:
        if proc.poll() is None:  # never leave a run behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.monotonic() - killed
    rank0 = "\n".join(p.read_text() for p in sorted(logs.rglob("stderr.log")))
    errors = [line for line in rank0.splitlines() if "error:" in line]
    check(len(errors) == 1 and "rank 0: lost contact" in errors[0] and f"rank 1 (pid {victim}) is gone" in errors[0],
          f"{run}: rank 0 did not say that rank 1 died: {rank0[-1200:]}")
    check(proc.returncode != 0, f"{run}: torchrun exited 0 after a worker died")
    # the run resumes from its last checkpoint
    from ganstack.engine.checkpoint import latest_checkpoint, load_checkpoint
    last = latest_checkpoint(ws.run_dir(run) / "checkpoints")
    step = load_checkpoint(last)["step"] if last else 0
    again = subprocess.run(torchrun(f"TRAIN.MAX_STEPS={step + 2}"),
                           capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, cwd=ROOT,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    check(again.returncode == 0 and f"step {step + 2} " in again.stdout,
          f"{run}: resuming after the worker death failed: {again.stderr[-800:]}")
    return {"seconds_to_stop": round(seconds, 2), "killed_at_step": at}


RUNNERS = {"kill": kill_resume, "disk": disk_full, "damaged": damaged_checkpoint, "ddp": ddp_worker_death}


def run_case(ws: Workspace, scenario: str, family: str, rng: random.Random, **options) -> Outcome:
    """One case; `options` go to its scenario (e.g. kills=1)."""
    t0 = time.monotonic()
    try:
        counts = RUNNERS[scenario](ws, family, rng, **options)
        return Outcome(scenario, family, True, "", time.monotonic() - t0, counts)
    except (CaseFailed, subprocess.TimeoutExpired) as e:
        return Outcome(scenario, family, False, str(e), time.monotonic() - t0)


# ---------------------------------------------------------------------- command line
def _choices(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    picked = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in picked if t not in allowed]
    if bad or not picked:
        raise SystemExit(f"fault_soak: error: {flag} {text!r}: choose from {','.join(allowed)}")
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fault_soak", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="cases per scenario and family (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"default {','.join(SCENARIOS)}")
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"default {','.join(FAMILIES)}")
    parser.add_argument("--ddp-families", default="damsm,pix2pix",
                        help="families of the ddp scenario (two torchrun processes; default damsm,pix2pix)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments and damage (default 0)")
    parser.add_argument("--work", help="workspace folder (default: a temporary one, removed at the end)")
    parser.add_argument("--json", help="write every outcome to this JSON file")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda; on cuda add --set TRAIN.DETERMINISTIC=true for bit-identical "
                             "resumes (the ddp scenario stays on CPU processes)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every run")
    args = parser.parse_args(argv)
    if args.runs < 1:
        raise SystemExit("fault_soak: error: --runs must be >= 1")
    scenarios = _choices(args.scenarios, SCENARIOS, "--scenarios")
    families = _choices(args.families, FAMILIES, "--families")
    ddp_families = _choices(args.ddp_families, FAMILIES, "--ddp-families")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fault_soak_"))
    rng = random.Random(args.seed)
    outcomes: list[Outcome] = []
    t0 = time.monotonic()
    try:
        ws = Workspace(work, args.device, tuple(args.sets))
        for n in range(args.runs):
            for scenario in scenarios:
                for family in (ddp_families if scenario == "ddp" else families):
                    outcome = run_case(ws, scenario, family, random.Random(rng.random()))
                    outcomes.append(outcome)
                    print(f"[{n + 1}/{args.runs}] {scenario:8s} {family:12s} {'ok' if outcome.ok else 'FAILED'} "
                          f"{outcome.seconds:5.1f} s {json.dumps(outcome.counts) if outcome.ok else outcome.detail}",
                          flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'scenario':8s} {'family':12s} {'cases':>5s} {'passed':>6s}  totals")
    for scenario in scenarios:
        for family in (ddp_families if scenario == "ddp" else families):
            mine = [o for o in outcomes if o.scenario == scenario and o.family == family]
            totals: dict = {}
            for o in mine:
                for k, v in o.counts.items():
                    if k.startswith("seconds"):  # the worst case
                        totals[f"max_{k}"] = max(totals.get(f"max_{k}", 0), v)
                    elif isinstance(v, str):
                        totals.setdefault(k, []).append(v)
                    elif not k.startswith(("limit", "checkpoint", "killed", "failed")):  # counts add up
                        totals[k] = totals.get(k, 0) + v
            passed = sum(o.ok for o in mine)
            print(f"{scenario:8s} {family:12s} {len(mine):5d} {passed:6d}  {json.dumps(totals)}")
    print(f"{len(outcomes)} cases, {sum(not o.ok for o in outcomes)} failed, {(time.monotonic() - t0) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=2) + "\n")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
