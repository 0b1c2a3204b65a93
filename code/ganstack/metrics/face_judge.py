"""The face judges: offline stand-ins for a pretrained age estimator and a face-recognition network.

One small CNN, trained once per face set on its real training faces and cached under
models/judges/ (the name hashes the files and settings), with two heads on a shared trunk:
  age        the age in years (regression, L1 on age / 100);
  identity   a 64-d unit embedding, trained by a cosine-softmax over the training identities
             (sets without identities, UTKFace's, train the age head alone).
Its pooled trunk features serve a domain FID. Every score of generated faces is reported beside the
same judge's score on real held-out faces (identities it never saw in training).

Aging metrics (`aging_report`), inputs from domain A translated to domain B:
  target_age_accuracy      fraction of outputs whose judged age lies in the target range; real: the
                           fraction of real target-domain test faces judged inside it
  identity.verification    fraction of (input, output) pairs whose embedding cosine clears the
                           threshold at which 1 % of real different-identity pairs pass; real: the
                           same for real same-identity pairs at another age (A vs B of one person)
  identity.mean_cosine     mean cosine of those pairs (and of the real same-identity pairs)
  judge_fid                FID of the outputs' judge features against real target-domain test faces;
                           real: train against test faces of the target domain
"""
from __future__ import annotations

import hashlib
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..data.faces import Face, in_range, read_faces
from ..errors import GanstackError
from ..io import atomic_path
from .distribution import frechet_distance, statistics
from .shapes_judge import _block, fit_small_net

JUDGE_VERSION = 2
SIZE = 64
EMBEDDING = 64
EPOCHS = 10
FALSE_ACCEPT = 0.01
CLASSIFIER_VERSION = 3  # 2: it also learns the training identities; 3: its initial weights are seeded too


class FaceJudge(nn.Module):
    def __init__(self, identities: int):
        super().__init__()
        self.trunk = nn.Sequential(_block(3, 32, 2), _block(32, 32, 1), _block(32, 64, 2), _block(64, 64, 1),
                                   _block(64, 128, 2), _block(128, 128, 1), _block(128, 128, 2))
        self.age = nn.Linear(128, 1)
        self.embed = nn.Linear(128, EMBEDDING)
        self.classes = nn.Parameter(torch.randn(max(identities, 1), EMBEDDING) * 0.1)

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] faces of any size -> the judge's 64 px input."""
        images = images.float()
        return images if images.shape[-1] == SIZE else F.interpolate(images, size=(SIZE, SIZE), mode="bilinear",
                                                                      align_corners=False, antialias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(age in years, unit embedding, pooled features) of prepared faces."""
        h = self.features(x)
        return self.age(h).squeeze(1) * 100, F.normalize(self.embed(h), dim=1), h


def read_images(faces: list[Face]) -> torch.Tensor:
    """[-1, 1] (N, 3, 64, 64) of the faces' files, RGB."""
    out = []
    for face in faces:
        with Image.open(face.path) as im:
            arr = np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
        out.append(torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1)
    return torch.stack(out)


def _fit(make_net, images: torch.Tensor, loss_of, *, seed: int, epochs: int, batch_size: int = 64,
         lr: float = 2e-3, device: str = "cpu") -> nn.Module:
    """A small net trained by the judges' loop (shapes_judge.fit_small_net) on faces with random
    horizontal flips; loss_of(net, faces, indices) -> loss."""
    device = torch.device(device)
    n = len(images)

    def batch_loss(net, idx):
        x = images[idx].to(device)
        flip = torch.rand(len(x), device=device) < 0.5
        return loss_of(net, torch.where(flip[:, None, None, None], x.flip(3), x), idx)
    net = fit_small_net(make_net, n, batch_loss, seed=seed, steps=epochs * math.ceil(n / batch_size),
                        batch_size=batch_size, lr=lr, device=device)
    return net.eval().requires_grad_(False)


def _identity_loss(unit_embedding: torch.Tensor, classes: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cosine softmax over the training identities (scale 16); the embedding is already unit length."""
    return F.cross_entropy(16 * unit_embedding @ F.normalize(classes, dim=1).t(), targets)


def train_judge(images: torch.Tensor, ages: torch.Tensor, identities: torch.Tensor | None, *, seed: int = 0,
                epochs: int = EPOCHS, batch_size: int = 64, lr: float = 2e-3, device: str = "cpu") -> FaceJudge:
    count = int(identities.max()) + 1 if identities is not None else 0

    def loss_of(judge, x, idx):
        age, embedding, _ = judge(x)
        loss = F.l1_loss(age / 100, ages[idx].to(x.device).float() / 100)
        if identities is not None:
            loss = loss + _identity_loss(embedding, judge.classes, identities[idx].to(x.device))
        return loss
    return _fit(lambda: FaceJudge(count), images, loss_of, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                device=device)


def judge_file(faces: list[Face], cache_dir: str | Path, seed: int, epochs: int) -> Path:
    digest = hashlib.sha256(f"faces-judge v{JUDGE_VERSION}|seed{seed}|epochs{epochs}".encode())
    for face in faces:
        digest.update(f"|{face.path.name}:{face.path.stat().st_size}:{face.identity}".encode())
    return Path(cache_dir) / f"faces_{digest.hexdigest()[:16]}.pt"


def load_or_train_judge(data_dir: str | Path, cache_dir: str | Path = "models/judges", device: str = "cpu",
                        seed: int = 0, epochs: int = EPOCHS) -> FaceJudge:
    """The judge of a face set (its train split), trained once and cached."""
    faces = read_faces(data_dir, "train")
    path = judge_file(faces, cache_dir, seed, epochs)
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            judge = FaceJudge(state["identities"])
            judge.load_state_dict(state["judge"])
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GanstackError(f"{path}: unreadable face judge ({reason}); delete it to train it again") from None
        return judge.to(device).eval().requires_grad_(False)
    print(f"face judges: training on {data_dir} (once; cached as {path})", file=sys.stderr, flush=True)
    names = sorted({f.identity for f in faces if f.identity is not None})
    identities = None
    if names and all(f.identity is not None for f in faces):
        index = {name: i for i, name in enumerate(names)}
        identities = torch.tensor([index[f.identity] for f in faces])
    judge = train_judge(read_images(faces), torch.tensor([f.age for f in faces]), identities, seed=seed,
                        epochs=epochs, device=device)
    with atomic_path(path) as tmp:
        torch.save({"judge": judge.state_dict(), "identities": len(names) if identities is not None else 0,
                    "version": JUDGE_VERSION}, tmp)
    return judge.to(device)


@torch.no_grad()
def judge_all(judge: FaceJudge, images: torch.Tensor, batch: int = 256):
    device = next(judge.parameters()).device
    parts = [judge(FaceJudge.prepare(images[i:i + batch].to(device))) for i in range(0, len(images), batch)]
    return tuple(torch.cat([p[k] for p in parts]).cpu() for k in range(3))


def _fid(a: torch.Tensor, b: torch.Tensor, what: str) -> float:
    return frechet_distance(statistics(a), statistics(b), num_a=len(a), num_b=len(b), what=what)


def aging_report(judge: FaceJudge, inputs: torch.Tensor, outputs: torch.Tensor,
                 data_dir: str | Path, split: str, target: tuple[int, int], source: tuple[int, int]) -> dict:
    """The metrics of the module docstring; inputs and outputs are [-1, 1] faces in matching order."""
    real = read_faces(data_dir, split)
    real_target = [f for f in real if in_range(f.age, target)]
    if not real_target:
        raise GanstackError(f"{data_dir} ({split}): no real face in the target ages {list(target)} to compare with")
    age_out, emb_out, feat_out = judge_all(judge, outputs)
    age_in, emb_in, _ = judge_all(judge, inputs)
    real_images = read_images(real)
    age_real, emb_real, feat_real = judge_all(judge, real_images)
    is_target = torch.tensor([in_range(f.age, target) for f in real])
    low, high = target
    report = {
        "target_ages": list(target), "images": len(outputs),
        "target_age_accuracy": float(((age_out >= low) & (age_out <= high + 0.999)).float().mean()),
        "target_age_accuracy_real": float(((age_real[is_target] >= low) & (age_real[is_target] <= high + 0.999))
                                          .float().mean()),
        "mean_judged_age": float(age_out.mean()), "mean_judged_age_input": float(age_in.mean()),
        "age_mae_real": float((age_real - torch.tensor([f.age for f in real]).float()).abs().mean()),
    }
    if all(f.identity is not None for f in real):
        same_pairs, diff_pairs = _pairs(real, source, target)
        cos = (emb_real @ emb_real.t())
        diff = torch.tensor([float(cos[i, j]) for i, j in diff_pairs])
        threshold = float(torch.quantile(diff, 1 - FALSE_ACCEPT)) if len(diff) else 1.0
        same = torch.tensor([float(cos[i, j]) for i, j in same_pairs])
        pair_cos = (emb_in * emb_out).sum(1)
        report["identity"] = {
            "threshold_at_1pct_false_accepts": threshold,
            "verification": float((pair_cos >= threshold).float().mean()),
            "verification_real_same_identity": float((same >= threshold).float().mean()) if len(same) else None,
            "mean_cosine": float(pair_cos.mean()),
            "mean_cosine_real_same_identity": float(same.mean()) if len(same) else None,
            "real_pairs": {"same_identity": len(same), "different_identity": len(diff)},
        }
    report["judge_fid"] = _fid(feat_out, feat_real[is_target], "judge FID")
    train = [f for f in read_faces(data_dir, "train") if in_range(f.age, target)]
    if train:
        report["judge_fid_real"] = _fid(judge_all(judge, read_images(train))[2], feat_real[is_target], "judge FID")
    return report


def _pairs(real: list[Face], source, target) -> tuple[list, list]:
    """Real same-identity pairs (a source-age face, a target-age face of the same person) and
    different-identity pairs (every source face against target faces of others)."""
    same, diff = [], []
    for i, a in enumerate(real):
        if not in_range(a.age, source):
            continue
        for j, b in enumerate(real):
            if in_range(b.age, target):
                (same if a.identity == b.identity else diff).append((i, j))
    return same, diff


# ------------------------------------------------------------------ IPCGAN's pretrained age classifier
class AgeClassifier(nn.Module):
    """IPCGAN's "pretrained age classifier" and identity feature extractor, trained here on the set's
    real training faces (its own seed, apart from the judges that evaluate): the judge's trunk with
    one logit per AGING.AGE_GROUPS group and, when the set names identities, a second task that tells
    the training identities apart, so that its features carry identity (an age task alone teaches
    the trunk to ignore who it is). `feature_maps` (the trunk's last maps) stand in for AlexNet's
    conv5 in the identity-preserving loss."""

    def __init__(self, groups: int, identities: int = 0):
        super().__init__()
        self.trunk = FaceJudge(0).trunk
        self.head = nn.Linear(128, groups)
        self.embed = nn.Linear(128, EMBEDDING)
        self.classes = nn.Parameter(torch.randn(max(identities, 1), EMBEDDING) * 0.1)

    def feature_maps(self, faces: torch.Tensor) -> torch.Tensor:
        return self.trunk(FaceJudge.prepare(faces))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_maps(faces).mean((2, 3)))


def load_or_train_age_classifier(data_dir: str | Path, groups, cache_dir: str | Path = "models/judges",
                                 device: str = "cpu", seed: int = 1, epochs: int = EPOCHS) -> AgeClassifier:
    from ..data.faces import age_group
    faces = [f for f in read_faces(data_dir, "train") if age_group(f.age, groups) is not None]
    digest = hashlib.sha256(f"age-classifier v{CLASSIFIER_VERSION}|{groups}|seed{seed}|epochs{epochs}".encode())
    for face in faces:
        digest.update(f"|{face.path.name}:{face.path.stat().st_size}:{face.identity}".encode())
    path = Path(cache_dir) / f"faces_ageclf_{digest.hexdigest()[:16]}.pt"
    names = sorted({f.identity for f in faces if f.identity is not None})
    identities = None
    if names and all(f.identity is not None for f in faces):
        index = {name: i for i, name in enumerate(names)}
        identities = torch.tensor([index[f.identity] for f in faces])
    count = len(names) if identities is not None else 0
    if path.is_file():
        net = AgeClassifier(len(groups), count)
        try:
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["classifier"])
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise GanstackError(f"{path}: unreadable age classifier ({reason}); delete it to train it again") from None
        return net.to(device).eval().requires_grad_(False)
    print(f"age classifier: training on {data_dir} (once; cached as {path})", file=sys.stderr, flush=True)
    labels = torch.tensor([age_group(f.age, groups) for f in faces])

    def loss_of(net, x, idx):
        h = net.trunk(x).mean((2, 3))
        loss = F.cross_entropy(net.head(h), labels[idx].to(x.device))
        if identities is not None:
            loss = loss + _identity_loss(F.normalize(net.embed(h), dim=1), net.classes, identities[idx].to(x.device))
        return loss
    net = _fit(lambda: AgeClassifier(len(groups), count), read_images(faces), loss_of, seed=seed, epochs=epochs,
               device=device)
    with atomic_path(path) as tmp:
        torch.save({"classifier": net.state_dict(), "groups": [list(g) for g in groups]}, tmp)
    return net
