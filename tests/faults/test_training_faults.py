"""Training under injected faults, through real `ganstack train` processes (scripts/fault_soak.py's
cases, a few of them on every test run; the script repeats them many times)."""
from __future__ import annotations

import random
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import fault_soak  # noqa: E402


def passes(workspace, scenario: str, family: str, seed: int, **options) -> dict:
    outcome = fault_soak.run_case(workspace, scenario, family, random.Random(seed), **options)
    assert outcome.ok, outcome.detail
    return outcome.counts


# The other families, damage kinds and many more kill moments (3 kills a run): scripts/fault_soak.py
# (README, Reliability); here one kill a run keeps the suite short.
@pytest.mark.parametrize("family", ["attngan", "pix2pix"])
def test_kill_9_at_a_random_moment_then_resume_ends_bit_identical(workspace, family):
    counts = passes(workspace, "kill", family, seed=1, kills=1)
    assert counts["kills"] == 1


def test_a_full_disk_during_a_checkpoint_write_stops_in_one_line_keeping_the_previous(workspace):
    counts = passes(workspace, "disk", "pix2pix", seed=2)
    assert counts["limit_bytes"] < counts["checkpoint_bytes"]


def test_a_damaged_latest_checkpoint_is_named_set_aside_and_skipped(workspace):
    # a flipped byte inside a tensor: torch.load alone reads it without complaint
    assert fault_soak.damaged_checkpoint(workspace, "attngan", random.Random(0), "flipped byte") == {
        "damage": "flipped byte"}


def test_a_dying_ddp_worker_stops_the_others_naming_its_rank(workspace):
    counts = passes(workspace, "ddp", "damsm", seed=3)
    assert counts["seconds_to_stop"] < fault_soak.DDP_BOUND_S


def test_damage_draws_each_kind(tmp_path):
    kinds = set()
    for seed in range(12):
        path = tmp_path / "f.bin"
        path.write_bytes(bytes(range(256)) * 4)
        kinds.add(fault_soak.damage(path, random.Random(seed)))
        assert path.read_bytes() != bytes(range(256)) * 4
    assert kinds == set(fault_soak.DAMAGE)
