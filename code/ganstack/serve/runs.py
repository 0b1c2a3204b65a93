"""The runs a server shows: every folder under --runs holding a ganstack config.yml, with its
checkpoints, latest eval report and sample gallery. Read fresh on every request (runs train on)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..engine.checkpoint import list_checkpoints
from ..errors import GanstackError

STEP = re.compile(r"checkpoint_(\d+)\.pth$")


@dataclass
class Run:
    name: str
    folder: Path
    variant: str
    dataset: str

    @property
    def variant_class(self):
        from ..variants import get_variant, known_variants
        return get_variant(self.variant) if self.variant in known_variants() else None

    @property
    def kind(self) -> str:
        """What the run is conditioned on, as its variant says: text, layout (text and boxes) or image."""
        cls = self.variant_class
        if cls is not None and getattr(cls, "condition_kind", "text") == "image":
            return "image"
        return "layout" if cls is not None and hasattr(cls, "conditions_from_layouts") else "text"

    @property
    def has_attention(self) -> bool:
        """Whether the run draws per-word attention maps (`attention`; caption runs, as AttnGAN's)."""
        return self.kind == "text" and hasattr(self.variant_class, "attention_strip")

    @property
    def ages_faces(self) -> bool:
        """Whether the run draws aging strips (`ages`)."""
        return hasattr(self.variant_class, "age_strip")

    def config(self) -> Config:
        """The run's own config, its folder wherever the runs folder now lies."""
        return load_config(self.folder / "config.yml",
                           [f"OUTPUT_DIR={self.folder.parent}", f"RUN_NAME={self.folder.name}"])

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.folder / "checkpoints")

    def checkpoint(self, name: str) -> Path:
        for path in self.checkpoints():
            if path.name == name or path.stem == name:
                return path
        raise LookupError(f"run {self.name} has no checkpoint {name!r}; "
                          f"it has {', '.join(p.name for p in self.checkpoints()) or 'none'}")

    def latest_eval(self) -> tuple[str, dict] | None:
        """The newest eval report (eval/*.json), by modification time, and its file name."""
        reports = sorted((self.folder / "eval").glob("*.json"), key=lambda p: p.stat().st_mtime)
        for path in reversed(reports):
            try:
                return path.name, json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being written or damaged: the one before
        return None

    def gallery(self) -> Path | None:
        page = self.folder / "samples" / "index.html"
        return page if page.is_file() else None

    def summary(self) -> dict:
        return {"name": self.name, "variant": self.variant, "dataset": self.dataset, "kind": self.kind,
                "ages": self.ages_faces,
                "checkpoints": [checkpoint_summary(p) for p in self.checkpoints()],
                "has_eval": self.latest_eval() is not None, "has_gallery": self.gallery() is not None}


def checkpoint_summary(path: Path) -> dict:
    match = STEP.search(path.name)
    return {"name": path.name, "step": int(match.group(1)) if match else None}


def read_run(folder: Path) -> Run | None:
    """The run in `folder`, or None when it holds no readable ganstack config."""
    try:
        head = (folder / "config.yml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    fields = dict(re.findall(r"^(VARIANT|DATASET_NAME):\s*(\S+)\s*$", head, re.M))
    if "VARIANT" not in fields:
        return None
    return Run(folder.name, folder, fields["VARIANT"].strip("'\""), fields.get("DATASET_NAME", "").strip("'\""))


def find_runs(root: Path) -> list[Run]:
    """Every run directly under `root` (name order)."""
    if not root.is_dir():
        raise GanstackError(f"--runs {root}: folder not found; point it at the OUTPUT_DIR of your training runs")
    runs = [read_run(p) for p in sorted(root.iterdir()) if p.is_dir()]
    return [r for r in runs if r is not None]


def find_run(root: Path, name: str) -> Run:
    for run in find_runs(root):
        if run.name == name:
            return run
    raise LookupError(f"no run {name!r} under {root}")
