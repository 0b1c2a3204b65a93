"""Process group set-up: one CPU/GPU process, or torchrun's many (any number of nodes)."""
from __future__ import annotations

import datetime
import os
import re
import socket
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    peers: list = field(default_factory=list)  # (host, pid) of every rank: who died, when one does

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def choose_kernels(deterministic: bool) -> None:
    """TRAIN.DETERMINISTIC: CUDA kernels that give the same bits on every run (cuBLAS's fixed
    workspace, cuDNN's deterministic algorithms; an op with none warns once), else cuDNN's autotuner,
    which times the algorithms per shape and keeps the fastest. CPU kernels are deterministic already."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def launch_rank() -> int:
    """torchrun's RANK of this process (0 outside torchrun), readable before setup()."""
    return int(os.environ.get("RANK", "0"))


def setup(device: str = "auto", timeout_s: float = 1800, deterministic: bool = False) -> DistEnv:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK; pick the device; init the group, whose
    collectives give up after `timeout_s` seconds (TRAIN.DIST_TIMEOUT) of waiting for a peer."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = launch_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    choose_kernels(deterministic)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    env = DistEnv(rank, world, local_rank, dev)
    env.peers = gather_objects(env, (socket.gethostname(), os.getpid()))
    return env


_COMMUNICATION = ("gloo", "nccl", "connection", "timed out", "timeout", "broken pipe", "socket", "peer")


def is_communication_error(error: BaseException) -> bool:
    """A collective that failed because another process died, hung or became unreachable (gloo and
    NCCL raise RuntimeError subclasses naming their transport, not the rank)."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    return isinstance(error, RuntimeError) and any(w in str(error).lower() for w in _COMMUNICATION)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed worker stays a zombie until torchrun reaps it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def error_summary(error: BaseException) -> str:
    """The first sentence of a backend error, without gloo's source-file prefix."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().split("\n")[0]) or type(error).__name__
    return text.split(". ")[0][:160]


def lost_peers(env: DistEnv, wait_s: float = 3.0) -> str:
    """Which ranks are gone, as far as this process can tell: those on this host whose process no
    longer exists (another host's processes cannot be checked from here). A dying process closes
    its sockets before it is gone, so the check waits up to `wait_s` seconds for one to go."""
    here = socket.gethostname()
    local = [(rank, pid) for rank, (host, pid) in enumerate(env.peers) if rank != env.rank and host == here]
    elsewhere = [rank for rank, (host, _) in enumerate(env.peers) if rank != env.rank and host != here]
    deadline = time.monotonic() + wait_s
    while True:
        gone = [f"rank {rank} (pid {pid}) is gone" for rank, pid in local if not _alive(pid)]
        if gone or not local or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if gone:
        return ", ".join(gone)
    if elsewhere:
        return f"a rank on another host ({', '.join(map(str, elsewhere))}) died or hung"
    return "another rank hung or closed its connection"


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True on every rank if any rank has `flag` set (used to stop together)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_objects(env: DistEnv, obj):
    """List of `obj` from every rank (on every rank)."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
