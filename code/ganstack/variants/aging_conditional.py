"""Face aging as IPCGAN (Wang et al. 2018, "Face Aging with Identity-Preserved Conditional Generative
Adversarial Networks"): one generator takes a face and a target age group.

G(x, t): pix2pix's ResNet generator with the one-hot target group t (AGING.AGE_GROUPS, IPCGAN's
five by default) tiled as extra input maps; batch norm, as the authors' code. D(x, t): a
conditional PatchGAN, the group maps joining after its first layer (nets/aging.py). One step, with
a source face x_s of any age, a target group t, a real face x_t of that group and another group f:

  1. D learns, least squares:  1/2 [ D(x_t, t) -> 1  +  1/2 (D(x_t, f) -> 0  +  D(G(x_s, t), t) -> 0) ]
                               x AGING.GAN_WEIGHT (75)
  2. G learns   1/2 D(G(x_s, t), t) -> 1                      x AGING.GAN_WEIGHT (75)
              + cross-entropy(age classifier(G(x_s, t)), t)   x AGING.AGE_WEIGHT (30)
              + MSE(features(G(x_s, t)), features(x_s))       x AGING.FEATURE_WEIGHT (identity preserving)
  Adam, TRAIN.GENERATOR_LR / DISCRIMINATOR_LR (the authors' 1e-3), beta1 0.5.

The age classifier and the identity features come from one network trained once on the set's real
faces (metrics/face_judge.AgeClassifier, its own seed; age groups and, where the set names them,
the training identities): the authors load an age classifier and an ImageNet AlexNet (conv5
features), neither of which can be downloaded here. So AGING.FEATURE_WEIGHT
is ours (60, for features of order 1; README), not their 0.5e-4, which scales raw AlexNet conv5
activations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..data import attngan
from ..data.aligned import load_inputs
from ..data.faces import age_group, group_dataset
from ..engine.optim import Updater
from ..errors import GanstackError
from ..losses import discriminator_term, generator_term
from ..nets.aging import ConditionalPatchDiscriminator
from ..nets.init import init_weights
from ..nets.pix2pix import ResnetGenerator
from .base import Variant, adam, frozen, unwrap

GRID_INPUTS = 5  # TensorBoard: fixed test faces, one row each: input, then every age group


class AgingConditional(Variant):
    name = "aging_conditional"
    collate = staticmethod(attngan.collate)
    condition_kind = "image"
    builds_from_data = False
    ema_nets = ("G",)               # cacd.yml: EMA_DECAY 0, G itself as IPCGAN; faces.yml averages

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.groups = [list(g) for g in cfg.AGING.AGE_GROUPS]
        self.classifier = None
        self._fixed = None

    # ----------------------------------------------------------------- data
    def dataset(self, split: str, train: bool):
        return group_dataset(self.cfg, split, train)

    def build(self, dataset) -> None:
        cfg, a = self.cfg, self.cfg.AGING
        count = len(self.groups)
        G = ResnetGenerator(3, 3, a.N_BLOCKS, a.NGF, "batch", noise_dim=count)  # the group maps ride as "z"
        self.nets["G"] = init_weights(G, "normal", 0.02)
        self.nets["D"] = init_weights(ConditionalPatchDiscriminator(count, a.NDF, "batch"), "normal", 0.02)
        if cfg.DATA.PREPROCESS != "none" and cfg.DATA.CROP_SIZE < 32:
            raise GanstackError(f"DATA.CROP_SIZE={cfg.DATA.CROP_SIZE}: the conditional PatchGAN needs at least 32 px")
        self.optimizers["D"] = adam(cfg, self.nets["D"].parameters(), cfg.TRAIN.DISCRIMINATOR_LR)
        self.optimizers["G"] = adam(cfg, self.nets["G"].parameters(), cfg.TRAIN.GENERATOR_LR)

    def age_classifier(self):
        if self.classifier is None:
            from ..metrics.face_judge import load_or_train_age_classifier
            self.classifier = load_or_train_age_classifier(self.cfg.DATA_DIR, self.groups, device=str(self.device))
        return self.classifier

    def onehot(self, groups: torch.Tensor) -> torch.Tensor:
        return F.one_hot(groups.long(), len(self.groups)).float()

    # ------------------------------------------------------------- training
    def train_step(self, batch: dict, step: int, opt: Updater) -> dict[str, float]:
        a = self.cfg.AGING
        G, D = self.nets["G"], self.nets["D"]
        source, real, target, false = batch["source"], batch["real"], batch["target"], batch["false"]
        classifier = self.age_classifier()

        # 1. D: real faces of the target group with that group -> real; with another group, or
        #    generated for the group -> fake.
        with opt.autocast():
            fake = G(source, self.onehot(target).to(source.dtype))
            d_terms = {"loss/D": a.GAN_WEIGHT * 0.5 * (
                discriminator_term("lsgan", D(real, target), True)
                + 0.5 * (discriminator_term("lsgan", D(real, false), False)
                         + discriminator_term("lsgan", D(fake.detach(), target), False)))}
        opt.update("D", sum(d_terms.values()), d_terms)

        # 2. G: fool D for the target group, be classified into it, keep the source's identity features.
        critic = unwrap(D)
        with frozen(critic), opt.autocast():
            out = fake.float()
            g_terms = {
                "loss/G_adversarial": a.GAN_WEIGHT * 0.5 * generator_term("lsgan", critic(fake, target)),
                "loss/G_age": a.AGE_WEIGHT * F.cross_entropy(classifier(out), target.long()),
                "loss/G_identity": a.FEATURE_WEIGHT * F.mse_loss(classifier.feature_maps(out),
                                                                 classifier.feature_maps(source.float())),
            }
        opt.update("G", sum(g_terms.values()), g_terms)
        return {k: v.item() for k, v in {**d_terms, **g_terms}.items()}

    # ------------------------------------------------------------- sampling
    def group_for(self, age: int) -> int:
        group = age_group(age, self.groups)
        if group is None:
            raise GanstackError(f"--ages {age}: in none of AGING.AGE_GROUPS {self.groups}")
        return group

    @torch.no_grad()
    def sample(self, conditions: torch.Tensor, noise: torch.Tensor | None = None, group: int | None = None
               ) -> torch.Tensor:
        """Faces aged (or rejuvenated) to `group` (default AGING.SAMPLE_GROUP; -1 = the oldest)."""
        x = conditions.to(self.device).float()
        group = self.cfg.AGING.SAMPLE_GROUP if group is None else group
        groups = torch.full((len(x),), group % len(self.groups), device=self.device)
        with self.sampling_net("G") as G:
            return G(x, self.onehot(groups)).float().clamp(-1, 1)

    def age_strip(self, x: torch.Tensor, ages: list[int]) -> list[torch.Tensor]:
        """One face (3, H, W) at each age's group."""
        return [self.sample(x[None], group=self.group_for(age))[0] for age in ages]

    def conditions_from_split(self, split: str, count: int, seed: int) -> tuple[list[str], torch.Tensor, list[int]]:
        from .aging_cycle import first_inputs
        dataset = self.dataset(split, train=False)
        return first_inputs(dataset, len(dataset), count, "source")

    def targets_of_split(self, split: str, indices: list[int]) -> list:
        return [None] * len(indices)

    def conditions_from_files(self, paths: list[str]):
        from .aging_cycle import warn_grey
        names, images = load_inputs(paths, self.cfg)
        warn_grey(names, images)
        return names, images

    def visuals(self, batch: dict) -> dict:
        """Fixed test faces, one row each: the input, then the face at every age group."""
        if self._fixed is None:
            self._fixed = self.conditions_from_split("test", GRID_INPUTS, seed=0)[1]
        x = self._fixed
        rows = torch.stack([x] + [self.sample(x, group=g).cpu() for g in range(len(self.groups))], 1).flatten(0, 1)
        return {"samples/input_then_each_age_group": make_grid(rows.add(1).div(2), nrow=len(self.groups) + 1,
                                                               padding=2)}

    # ----------------------------------------------------------- evaluation
    def evaluate(self, split: str, seed: int) -> dict:
        """Every test face of the youngest groups aged to the oldest group (AGING.EVAL_GROUP), scored by the
        face judges beside real faces of that group (metrics/face_judge.py)."""
        from ..metrics.face_judge import aging_report, load_or_train_judge
        dataset = self.dataset(split, train=False)
        target = self.cfg.AGING.SAMPLE_GROUP % len(self.groups)
        source = 0 if target != 0 else len(self.groups) - 1
        picked = [i for i in range(len(dataset)) if dataset.group_of(i) == source]
        items = [dataset[i] for i in picked]
        inputs = torch.stack([item["source"] for item in items if item is not None])
        outputs = torch.cat([self.sample(inputs[k:k + 64], group=target).cpu() for k in range(0, len(inputs), 64)])
        judge = load_or_train_judge(self.cfg.DATA_DIR, device=str(self.device))
        report = aging_report(judge, inputs, outputs, self.cfg.DATA_DIR, split, tuple(self.groups[target]),
                              tuple(self.groups[source]))
        report["protocol"] = {"split": split, "source_group": self.groups[source], "target_group": self.groups[target],
                              "inputs": "every test face of the source group at DATA.CROP_SIZE"}
        return report
