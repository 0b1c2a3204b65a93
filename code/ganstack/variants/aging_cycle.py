"""Face aging as Fast-AgingGAN (HasnainRaz/Fast-AgingGAN): CycleGAN between a young domain A and an
old domain B, with small generators for speed.

Two ResNet generators G_AB (young -> old) and G_BA (old -> young): reflect padding, 7x7 head, two
stride-2 downsamplings, AGING.N_BLOCKS residual blocks, two transposed-conv upsamplings, tanh,
AGING.NGF 32 channels. Two PatchGAN discriminators D_A, D_B (AGING.NDF 32). AGING.NETS picks their
make: `fast_aginggan` (default) as the original's models.py: batch norm and biased convs in the
generators, PyTorch's default initialisation, discriminators with batch norm on the second layer
and instance norm on the third and fourth whose patch logits are averaged to one per image (its
released generator loads by name); `cyclegan` as CycleGAN: instance norm throughout, N(0, 0.02)
weights, one LSGAN target per 70x70 patch. One training step:

  1. b_hat = G_AB(a), a_hat = G_BA(b)
  2. D_B learns b -> real, b_hat -> fake; D_A learns a -> real, a_hat -> fake; least squares
     (LSGAN), each D's loss halved.
  3. G_AB and G_BA learn together:
        AGING.ADV_WEIGHT (2)       x [D_B(b_hat) -> real + D_A(a_hat) -> real]
      + AGING.CYCLE_WEIGHT (10)    x [|G_BA(b_hat) - a|_1 + |G_AB(a_hat) - b|_1]
      + AGING.IDENTITY_WEIGHT (7)  x [|G_AB(b) - b|_1 + |G_BA(a) - a|_1]
Adam 1e-4, betas (0.5, 0.999), weight decay AGING.WEIGHT_DECAY (1e-4), for both pairs.

Both generators are trained, saved (export: G_AB.pth, G_BA.pth) and sampled (AGING.SAMPLE_DIRECTION
picks the one `ganstack sample` and serve use; TensorBoard shows both). Data: data/faces.py (two age
ranges of UTKFace / CACD names, or Fast-AgingGAN's trainA/ and trainB/).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..data import attngan
from ..data.aligned import load_inputs
from ..data.faces import domain_dataset
from ..engine.optim import Updater
from ..errors import GanstackError
from ..io import atomic_path
from ..losses import discriminator_term, generator_term
from ..nets.aging import AveragedPatchDiscriminator
from ..nets.init import init_weights
from ..nets.pix2pix import NLayerDiscriminator, ResnetGenerator
from .base import Variant, adam, frozen, unwrap

GRID_INPUTS = 6  # TensorBoard: fixed test faces of each domain, one row each: input | translated | back


def first_inputs(dataset, available: int, count: int, key: str) -> tuple[list[str], torch.Tensor, list[int]]:
    """(file names, input faces, indices) of the dataset's first `count` readable items (all when count <= 0)."""
    indices = list(range(min(count, available) if count > 0 else available))
    items = [dataset[i] for i in indices]
    keep = [k for k, item in enumerate(items) if item is not None]
    return ([dataset.path(indices[k]).name for k in keep], torch.stack([items[k][key] for k in keep]),
            [indices[k] for k in keep])


def warn_grey(names: list[str], images: list[torch.Tensor]) -> None:
    """Grey-scale input faces are read as RGB (the grey repeated); say so, the models saw colour faces."""
    for name, image in zip(names, images):
        if image.shape[0] == 3 and torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]):
            warnings.warn(f"{name}: a grey-scale image; the model was trained on colour faces, so expect "
                          "colour casts", stacklevel=3)


def logits(critic, faces: torch.Tensor) -> torch.Tensor:
    """A discriminator's LSGAN outputs: CycleGAN's PatchGAN returns every stage (logits last)."""
    out = critic(faces)
    return out[-1] if isinstance(out, list) else out


class AgingCycle(Variant):
    name = "aging_cycle"
    collate = staticmethod(attngan.collate)
    condition_kind = "image"        # sample.sh and serve take face images
    builds_from_data = False
    ema_nets = ("G_AB", "G_BA")     # cacd.yml: EMA_DECAY 0, G itself as Fast-AgingGAN; faces.yml averages

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self._fixed = None

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        return domain_dataset(self.cfg, split, train)

    def build(self, dataset) -> None:
        cfg, a = self.cfg, self.cfg.AGING
        size = cfg.DATA.CROP_SIZE
        original = a.NETS == "fast_aginggan"
        for name in ("G_AB", "G_BA"):
            if original:
                self.nets[name] = ResnetGenerator(3, 3, a.N_BLOCKS, a.NGF, "batch", bias=True)
            else:
                self.nets[name] = init_weights(ResnetGenerator(3, 3, a.N_BLOCKS, a.NGF, "instance"), "normal", 0.02)
        for name in ("D_A", "D_B"):
            D = AveragedPatchDiscriminator(a.NDF) if original else NLayerDiscriminator(3, a.NDF, 3, "instance")
            if cfg.DATA.PREPROCESS != "none" and size < D.min_size():
                raise GanstackError(f"DATA.CROP_SIZE={size}: the PatchGAN discriminators need at least "
                                    f"{D.min_size()} px faces")
            self.nets[name] = D if original else init_weights(D, "normal", 0.02)
        generators = [p for name in ("G_AB", "G_BA") for p in self.nets[name].parameters()]
        critics = [p for name in ("D_A", "D_B") for p in self.nets[name].parameters()]
        self.optimizers["D"] = adam(cfg, critics, cfg.TRAIN.DISCRIMINATOR_LR, a.WEIGHT_DECAY)
        self.optimizers["G"] = adam(cfg, generators, cfg.TRAIN.GENERATOR_LR, a.WEIGHT_DECAY)

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        w = self.cfg.AGING
        G_AB, G_BA, D_A, D_B = (self.nets[n] for n in ("G_AB", "G_BA", "D_A", "D_B"))
        a, b = batch["A"], batch["B"]

        # 1-2. Both discriminators: real faces of their domain -> real, translated ones -> fake.
        with opt.autocast():
            b_hat, a_hat = G_AB(a), G_BA(b)
            d_terms = {
                "loss/D_A": 0.5 * (discriminator_term("lsgan", logits(D_A, a), True)
                                   + discriminator_term("lsgan", logits(D_A, a_hat.detach()), False)),
                "loss/D_B": 0.5 * (discriminator_term("lsgan", logits(D_B, b), True)
                                   + discriminator_term("lsgan", logits(D_B, b_hat.detach()), False))}
        opt.update("D", sum(d_terms.values()), d_terms)

        # 3. Both generators: fool the other domain's D, come back by the cycle, leave own-domain faces be.
        critics = [unwrap(D_A), unwrap(D_B)]  # bare: keep DDP's hooks out of a frozen D
        with frozen(*critics), opt.autocast():
            adversarial = (generator_term("lsgan", logits(critics[1], b_hat))
                           + generator_term("lsgan", logits(critics[0], a_hat)))
            cycle = F.l1_loss(G_BA(b_hat).float(), a.float()) + F.l1_loss(G_AB(a_hat).float(), b.float())
            identity = F.l1_loss(G_AB(b).float(), b.float()) + F.l1_loss(G_BA(a).float(), a.float())
            g_terms = {"loss/G_adversarial": w.ADV_WEIGHT * adversarial, "loss/G_cycle": w.CYCLE_WEIGHT * cycle,
                       "loss/G_identity": w.IDENTITY_WEIGHT * identity}
        opt.update("G", sum(g_terms.values()), g_terms)
        return {k: v.item() for k, v in {**d_terms, **g_terms}.items()}

    # ------------------------------------------------------------- sampling
    def generator_name(self, direction: str | None = None) -> str:
        return "G_AB" if (direction or self.cfg.AGING.SAMPLE_DIRECTION) == "AtoB" else "G_BA"

    @torch.no_grad()
    def sample(self, conditions: torch.Tensor, noise: torch.Tensor | None = None,
               direction: str | None = None) -> torch.Tensor:
        """Faces (B, 3, H, W) in [-1, 1] translated by G_AB (young to old) or G_BA."""
        x = conditions.to(self.device).float()
        with self.sampling_net(self.generator_name(direction)) as G:
            return G(x).float().clamp(-1, 1)

    def conditions_from_split(self, split: str, count: int, seed: int) -> tuple[list[str], torch.Tensor, list[int]]:
        """(file names, faces of domain A, indices): the first `count` inputs of `split` (all when count <= 0)."""
        dataset = self.dataset(split, train=False)
        return first_inputs(dataset, len(dataset.files_a), count, "A")

    def targets_of_split(self, split: str, indices: list[int]) -> list:
        return [None] * len(indices)  # unpaired: no target face

    def conditions_from_files(self, paths: list[str]) -> tuple[list[str], list[torch.Tensor]]:
        """Input faces of `ganstack sample --input`: grey-scale ones are repeated to RGB, with a warning."""
        names, images = load_inputs(paths, self.cfg)
        warn_grey(names, images)
        return names, images

    def age_strip(self, x: torch.Tensor, ages: list[int]) -> list[torch.Tensor]:
        """One face (3, H, W) per age: G_AB's output for an age of domain B, G_BA's for one of domain A
        (a two-domain model draws those two ages only; any other age is an error)."""
        from ..data.faces import in_range
        out = []
        for age in ages:
            if in_range(age, self.cfg.AGING.DOMAIN_B):
                out.append(self.sample(x[None], direction="AtoB")[0])
            elif in_range(age, self.cfg.AGING.DOMAIN_A):
                out.append(self.sample(x[None], direction="BtoA")[0])
            else:
                raise GanstackError(f"--ages {age}: in neither AGING.DOMAIN_A {self.cfg.AGING.DOMAIN_A} nor "
                                    f"DOMAIN_B {self.cfg.AGING.DOMAIN_B}; a two-domain model draws those two")
        return out

    def visuals(self, batch: dict) -> dict:
        """Fixed test faces: young -> old -> back, and old -> young -> back, one row each."""
        if self._fixed is None:
            dataset = self.dataset("test", train=False)
            items = [dataset[i] for i in range(min(GRID_INPUTS, len(dataset)))]
            items = [it for it in items if it is not None]
            self._fixed = (torch.stack([it["A"] for it in items]), torch.stack([it["B"] for it in items]))
        a, b = self._fixed
        old = self.sample(a, direction="AtoB")
        young = self.sample(b, direction="BtoA")
        rows = torch.cat([torch.stack([a, old.cpu(), self.sample(old, direction="BtoA").cpu()], 1),
                          torch.stack([b, young.cpu(), self.sample(young, direction="AtoB").cpu()], 1)]).flatten(0, 1)
        return {"samples/young_old_back__old_young_back": make_grid(rows.add(1).div(2), nrow=3, padding=2)}

    # ----------------------------------------------------------- evaluation
    def evaluate(self, split: str, seed: int) -> dict:
        """Every domain-A face of `split` aged by G_AB, scored by the face judges (metrics/face_judge.py)
        beside real faces: target-age accuracy, identity verification, judge FID."""
        from ..data.faces import parse_name
        from ..metrics.face_judge import aging_report, load_or_train_judge
        cfg = self.cfg
        source, target = ((cfg.AGING.DOMAIN_A, cfg.AGING.DOMAIN_B) if cfg.DATA.DIRECTION == "AtoB"
                          else (cfg.AGING.DOMAIN_B, cfg.AGING.DOMAIN_A))
        dataset = self.dataset(split, train=False)
        if any(parse_name(p.name) is None for p in dataset.files_a[:1] + dataset.files_b[:1]):
            return {"skipped": {"face_judges": "the judges learn ages from UTKFace or CACD file names; these "
                                              "trainA/trainB files carry none"}}
        items = [dataset[i] for i in range(len(dataset.files_a))]
        inputs = torch.stack([item["A"] for item in items if item is not None])
        outputs = torch.cat([self.sample(inputs[k:k + 64], direction="AtoB").cpu() for k in range(0, len(inputs), 64)])
        judge = load_or_train_judge(cfg.DATA_DIR, device=str(self.device))
        report = aging_report(judge, inputs, outputs, cfg.DATA_DIR, split, tuple(target), tuple(source))
        report["protocol"] = {"split": split, "direction": "A to B (G_AB)", "source_ages": list(source),
                              "inputs": "every source-age face of the split at DATA.CROP_SIZE"}
        return report

    def export(self, folder: Path) -> list[Path]:
        """Both generators' weights (the EMA copy when kept), as bare state dicts."""
        written = []
        for name in ("G_AB", "G_BA"):
            path = Path(folder) / f"{name}.pth"
            with self.sampling_net(name) as G, atomic_path(path) as tmp:
                torch.save(G.state_dict(), tmp)
            written.append(path)
        return written

