"""Configuration: the defaults below are the schema.

Keys follow the original AttnGAN / OP-GAN / StackGAN names (upper case, dotted
groups), so their published cfg files load with at most a ``VARIANT:`` line
added. A YAML file may inherit another with ``_BASE_: path`` (relative to the
file); ``--set A.B=value`` overrides win over both. Unknown keys and wrong
types are errors that name the file, the key and the nearest valid key.
"""
from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any

import yaml

from .errors import GanstackError

# A value of None means "any type" (paths that may be unset, lists of sizes...).
DEFAULTS: dict[str, Any] = {
    "VARIANT": "damsm",
    "CONFIG_NAME": "",
    "DATASET_NAME": "shapes",
    "DATA_DIR": "data/shapes",
    "OUTPUT_DIR": "output",
    "RUN_NAME": "",              # output/<RUN_NAME>; derived from the cfg file name when empty
    "GPU_ID": None,              # kept for original cfg files (0, or StackGAN's "0,1"); devices come from train.sh
    "CUDA": True,                # idem
    "WORKERS": 2,
    "SEED": 0,
    "RNN_TYPE": "LSTM",
    "B_VALIDATION": False,
    "MAX_OBJECTS": 3,            # OP-GAN: objects per layout (3: the bboxes.pickle files; up to 10: the _large ones)
    "DEBUG": False,              # OP-GAN's cfg key, for any variant: train on the first DEBUG_NUM_DATAPOINTS items
    "DEBUG_NUM_DATAPOINTS": 100, # (with TRAIN.OPTIMIZE_DATA_LOADING: the first 1/10 of that of each object count)
    "EMBEDDING_TYPE": "cnn-rnn",  # StackGAN++'s text: cnn-rnn | cnn-gru | skip-thought (the authors' embedding
                                  # pickles) | damsm (captions through TRAIN.NET_E: free text works)
    "TREE": {"BRANCH_NUM": 1, "BASE_SIZE": 64},
    "TRAIN": {
        "FLAG": True,
        "BATCH_SIZE": 48,        # per process; the global batch is this × world size
        "MAX_EPOCH": 600,
        "MAX_STEPS": 0,          # > 0 stops after this many optimiser steps (overrides MAX_EPOCH)
        "MAX_MINUTES": 0.0,      # > 0 also stops after this many minutes of training steps (data loading
                                 # included; start-up, checkpoints and evaluation not), summed over resumes;
                                 # the learning-rate schedule still runs to MAX_STEPS / MAX_EPOCH
        "SNAPSHOT_INTERVAL": 2000,   # steps between checkpoints
        "KEEP_CHECKPOINTS": 3,   # the last K periodic checkpoints are kept
        "LOG_INTERVAL": 50,      # steps between scalar logs
        "IMAGE_INTERVAL": 500,   # steps between image grids in TensorBoard
        "LOGGERS": ["tensorboard"],  # tensorboard and/or mlflow (MLFLOW.*), rank 0 only
        "EVAL_INTERVAL": 0,      # > 0: steps between `ganstack eval` metrics logged to TensorBoard
        "DIST_TIMEOUT": 1800,    # seconds a torchrun process waits for the others in one collective before
                                 # stopping (a hung peer); a dead one is noticed at once
        "DISCRIMINATOR_LR": 2e-4,
        "GENERATOR_LR": 2e-4,
        "ENCODER_LR": 2e-4,
        "BETA1": 0.5,            # Adam betas of the GAN optimizers
        "BETA2": 0.999,
        "LR_SCHEDULE": "auto",   # auto (the variant's paper schedule) | none | exponential (LR_DECAY per epoch,
                                 # floored at LR_MIN_FACTOR) | linear | cosine (from 1 after LR_CONSTANT_EPOCHS
                                 # to LR_MIN_FACTOR at the end, per step) | step (x LR_STEP_GAMMA every
                                 # LR_STEP_EPOCHS) | plateau (x 0.2 after 5 epochs without a 1% better
                                 # epoch mean of the variant's monitored loss, as pix2pix)
        "LR_DECAY": 0.98,
        "LR_MIN_FACTOR": 0.1,
        "LR_CONSTANT_EPOCHS": 0,  # linear/cosine: epochs at the full rate first (pix2pix n_epochs: 100)
        "LR_STEP_EPOCHS": 50,    # step: epochs between decays (pix2pix lr_decay_iters)
        "LR_STEP_GAMMA": 0.1,
        "RNN_GRAD_CLIP": 0.25,
        "GRAD_CLIP": 0.0,        # > 0 clips every other optimizer's gradient norm
        "PRECISION": "fp32",     # fp32 | bf16 | fp16 (fp16 uses a GradScaler per optimizer) | auto: bf16 where
                                 # the device runs it natively (CUDA, or a CPU with AVX512-BF16 / AMX), else fp32
        "CHANNELS_LAST": False,  # NHWC weights (and so activations) for conv nets
        "SYNC_BN": False,
        "DETERMINISTIC": False,  # CUDA: deterministic kernels (bit-identical reruns and resumes, slower);
                                 # false lets cuDNN pick the fastest convolution per shape
        "EMA_DECAY": 0.999,      # the averaged generator that samples (ema_nets); 0: none, G itself samples
        "FLIP": True,            # random horizontal flip; off for data whose captions name left/right
        "CROP_JITTER": True,     # captioned images (DAMSM, AttnGAN, GAN-INT-CLS): enlarge to 76/64 of the size
                                 # and crop a random window back, as AttnGAN's and Reed et al.'s Torch loaders;
                                 # false: resize only (the GAN-INT-CLS PyTorch port). Training only
        "NET_E": "",
        "NET_G": "",
        "B_NET_D": True,
        "BBOX_LOSS": True,       # OP-GAN: D also rejects images with wrong boxes (its D loss's /5 form)
        "OPTIMIZE_DATA_LOADING": False,  # OP-GAN: every batch holds images of one object count, sized by
                                 # TRAIN.BATCH_SIZE as a list (0, 1, 2, ... objects; the last size for more)
        "EMPTY_CACHE": False,    # OP-GAN's cfg key: frees cached CUDA memory after sampling (a memory hint)
        "GENERATED_BBOXES": False,  # OP-GAN: the test split's layouts come from bboxes_generated.pickle
        "NET_D": "",             # StackGAN++'s key for the authors' netD<i>.pth files; only empty is accepted
                                 # (training resumes from ganstack checkpoints)
        "VIS_COUNT": 64,         # StackGAN++: generated images in each TensorBoard grid
        "COEFF": {               # StackGAN++'s loss weights (the authors' defaults)
            "KL": 2.0,           # conditioning augmentation's KL
            "UNCOND_LOSS": 0.0,  # the unconditional logit's terms beside the conditional ones (birds: 1.0)
            "COLOR_LOSS": 0.0,   # colour consistency between adjacent scales (paper 1; the LSUN cfgs 50)
        },
        "SMOOTH": {"GAMMA1": 5.0, "GAMMA2": 5.0, "GAMMA3": 10.0, "LAMBDA": 1.0},
    },
    "GAN": {
        "DF_DIM": 64, "GF_DIM": 128, "Z_DIM": 100, "CONDITION_DIM": 100, "R_NUM": 2,
        "B_ATTENTION": True, "B_DCGAN": False,
        "B_CONDITION": False,    # StackGAN++: text-conditional (true) or unconditional (false, the authors' default)
        "NETWORK_TYPE": "default",  # StackGAN++'s cfg key; only default exists
        "D_MU_GRAD": True,       # StackGAN++: G's adversarial terms also move the CA mean D reads as its condition
                                 # (the authors' code); false: D reads it detached, so the CA learns only through
                                 # the images it conditions (not in the code)
        "D_CONDITION": "mu",     # StackGAN++: what the conditional D heads read: mu (the CA mean, the authors'
                                 # code) | embedding (the text embedding itself, detached, as GAN-INT-CLS's D)
        # OP-GAN (the authors' names; GEN_FEAT_DIM, DISC_FEAT_DIM, GLOBAL_Z_DIM, TEXT_CONDITION_DIM and
        # RESIDUAL_NUM are read as GF_DIM, DF_DIM, Z_DIM, CONDITION_DIM and R_NUM)
        "LOCAL_Z_DIM": 32,       # the object pathway's noise
        "INIT_LABEL_DIM": 100,   # first stage: each object's feature (label, sentence, local z)
        "NEXT_LABEL_DIM": 128,   # later stages: each object's label-and-sentence feature
        "LAYOUT_SPATIAL_DIM": 16,  # the global pathway's layout map
        "SPECTRAL_NORM": False,  # spectral norm on every D conv, batch norm removed (the same as D_NORM: spectral)
        "WRONG_BOX_IMAGES": "fake",  # OP-GAN's wrong-box pairs: fake (the authors' code) | real images with
                                 # another image's boxes
        "INIT": "authors",       # AttnGAN's G and Ds: authors (miscc/utils.py weights_init: orthogonal conv and
                                 # linear weights, gain 1; BatchNorm weights N(1, 0.02), biases 0) | pytorch
                                 # (PyTorch's layer defaults). The frozen DAMSM encoders are never touched
        # GAN-INT-CLS (Reed et al. 2016); defaults are the paper's (its authors' Torch code, reedscot/icml2016)
        "TYPE": "gan",           # gan | wgan | wgan-gp | vanilla_gan | vanilla_wgan (vanilla = no text)
        "ADV_LOSS": "auto",      # auto (bce for gan types, wasserstein for wgan types) | bce | lsgan | hinge
        "CLS": True,             # matching-aware D: real image + mismatched text counts as fake
        "CLS_WEIGHT": 0.5,       # with CLS, D's fake term weighs 1 - w and its mismatched term w (paper: 1/2 each)
        "INT": True,             # G also learns from interpolated text embeddings
        "INT_BETA": 0.5,         # t = beta * t1 + (1 - beta) * t2
        "REAL_LABEL": 1.0,       # D's real target (bce/lsgan); < 1: one-sided label smoothing (the PyTorch port: 0.9)
        "L1_COEF": 0.0,          # weight of |G(z, t) - x|_1 (not in the paper; the PyTorch port: 50)
        "L1_POOL": 1,            # > 1: that L1 compares k x k block means (colour and place), leaving
                                 # edges to the adversarial terms (1: per pixel, as the reference)
        "L2_COEF": 0.0,          # weight of feature matching on D's last 4x4 features (not in the paper; the port: 100)
        "MINIBATCH_KERNELS": 0,  # > 0 adds minibatch discrimination with this many kernels
        "DITER": 5,              # critic steps per generator step (wgan types)
        "WGAN_WARMUP": True,     # wgan/vanilla_wgan: 100 critic steps for the first 25 and every 500th G step
        "CLIP": 0.01,            # wgan/vanilla_wgan weight clipping
        "GP_LAMBDA": 10.0,       # wgan-gp gradient penalty weight
        "D_NORM": "auto",        # discriminator normalisation: auto (batch; layer for wgan-gp) | batch | layer |
                                 # spectral (spectral norm on every weight, no activation norm) | none
                                 # (AttnGAN's Ds: auto = batch, as the authors; spectral; none)
        "R1_GAMMA": 0.0,         # > 0: D also minimises gamma/2 * |grad_x D(x)|^2 on real images (Mescheder et
                                 # al. 2018; not in the GAN-INT-CLS or AttnGAN papers: a stabiliser setting)
        "R1_INTERVAL": 1,        # R1 every k-th D step, weighted by k (StyleGAN2's lazy regularisation)
        "HARD_MISMATCH": 0.0,    # matching-aware Ds (AttnGAN, GAN-INT-CLS): this fraction of the mismatched pairs
                                 # takes the caption (AttnGAN) or image (GAN-INT-CLS) of one of the
                                 # HARD_MISMATCH_K other-class images whose captions the text encoder finds
                                 # nearest, so D must check every attribute; the rest are random other-class
                                 # pairs. 0: the papers' random mismatched pairs (not in either paper)
        "HARD_MISMATCH_K": 16,
        "DIFF_AUGMENT": "",      # DiffAugment on every D input of GAN-INT-CLS / AttnGAN: comma-separated
                                 # color,translation,cutout (empty: none; other variants refuse it)
        "LOSS": "vanilla",       # image-to-image variants (pix2pix): vanilla | lsgan | hinge | wgangp (+ GP_LAMBDA)
    },
    "DATA": {                    # image-to-image data (pix2pix's options, same names)
        "DATASET_MODE": "aligned",   # aligned (A|B side by side in {train,val,test}/) | unaligned (trainA/, trainB/)
        "DIRECTION": "AtoB",     # AtoB | BtoA: which half is the input
        "PREPROCESS": "resize_and_crop",  # resize_and_crop | crop | scale_width | scale_width_and_crop | none
        "LOAD_SIZE": 286,        # resize target (the width for scale_width)
        "CROP_SIZE": 256,        # random crop when training; evaluation resizes (or centre-crops) to it
        "ROTATION": 0.0,         # training: rotate by a random angle in [0, ROTATION] degrees after the crop,
                                 # corners black (Fast-AgingGAN's augment_rotation, 80); 0 = none
        "INPUT_NC": 3,           # channels of the input: 1 grey, 3 RGB, 4 RGBA (.npy pairs: any)
        "OUTPUT_NC": 3,
        "LABEL_NC": 0,           # pix2pix: > 0, the input is a label map in LABEL_PALETTE colours, which G and D
                                 # take as LABEL_NC one-hot channels (pix2pixHD's --label_nc); 0: the image as it is
        "LABEL_PALETTE": "",     # LABEL_NC's colours, class 0 first: a JSON file holding a list of [r, g, b];
                                 # empty: DATA_DIR/meta.json's "palette" (written by `prepare shapes --aligned`)
    },
    "PIX2PIX": {                 # pix2pix family networks and losses; defaults are the paper's
        "NET_G": "unet",         # unet | resnet_6blocks | resnet_9blocks
        "UNET_DEPTH": 0,         # U-Net downsamplings; 0: log2(CROP_SIZE) (unet_256 = 8, unet_128 = 7)
        "NGF": 64,
        "NDF": 64,
        "NET_D": "basic",        # basic (70x70 PatchGAN) | n_layers (N_LAYERS_D) | pixel (1x1) | multiscale (pix2pixHD)
        "N_LAYERS_D": 3,
        "NUM_D": 3,              # multiscale: PatchGANs on a pyramid of NUM_D scales
        "NORM": "batch",         # batch | instance | none
        "SPECTRAL_NORM": False,  # spectral norm on every D conv (norm layers dropped, biases kept)
        "INIT_TYPE": "normal",   # normal | xavier | kaiming | orthogonal
        "INIT_GAIN": 0.02,
        "DROPOUT": 0.5,          # U-Net: 3 innermost decoder blocks; ResNet: every block (0 = no_dropout)
        "TEST_DROPOUT": False,   # keep dropout on when sampling: K different outputs per input
        "NOISE_DIM": 0,          # > 0: that many z channels, tiled, enter G at its input and its bottleneck
        "LAMBDA_DIVERSITY": 0.0,  # mode-seeking term (Mao et al. 2019) that makes G use z (with NOISE_DIM)
        "LAMBDA_L1": 100.0,
        "LAMBDA_PERCEPTUAL": 0.0,  # VGG19 feature loss (pix2pixHD: 10)
        "VGG_WEIGHTS": "models/vgg19-dcbb9e9d.pth",  # torchvision vgg19 state dict (features.* keys suffice)
        "LAMBDA_FEAT": 0.0,      # D feature matching (pix2pixHD: 10)
        "POOL_SIZE": 0,          # buffer of past fakes shown to D (pix2pix 0, CycleGAN 50)
    },
    "SR": {                      # super-resolution family (srresnet, srgan, srcnn); defaults are SRGAN's paper
        "SCALE": 4,              # 2 | 4 | 8
        "HR_CROP": 96,           # training crops of the HR image (LR crops are HR_CROP / SCALE)
        "CROPS_PER_IMAGE": 20,   # random crops taken from each HR image in one epoch
        "AUGMENT": True,         # random horizontal / vertical flips and 90-degree rotations of the crops
        "CHANNELS": "rgb",       # rgb | y (the networks see BT.601 luma only; colour comes from bicubic)
        "DOWNSAMPLE": "matlab",  # LR made on the fly (no LR folder): matlab (imresize bicubic) | pil
        "CACHE_IMAGES": False,   # keep decoded images in memory (small sets: the embedded photos)
        "TEST_DIR": "",          # the test split's folder (e.g. a Set5 benchmark folder); empty: DATA_DIR's
        "EVAL_BORDER": -1,       # pixels cut from each side before PSNR/SSIM; -1: the scale
        "TEXTURE_JUDGE": True,   # eval also scores 32 px patches with the texture judge (metrics/sr_judge.py;
                                 # trained once on the HR training images, cached under models/judges/)
        "TEXTURE_JUDGE_STEPS": 1500,  # its training steps (batches of 64 patches)
        "INCEPTION_PATCH": 64,   # with EVAL.INCEPTION_WEIGHTS: Inception FID/KID on every non-overlapping patch
                                 # of this side (border-cropped), outputs and bicubic against the HR images
        "NUM_BLOCKS": 16,        # SRResNet residual blocks
        "WIDTH": 64,             # SRResNet channels
        "NORM": "batch",         # SRResNet's residual blocks: batch (the paper) | none (EDSR's finding: BN shifts
                                 # colours and costs PSNR; not the paper)
        "GLOBAL_RESIDUAL": "none",  # SRResNet/SRGAN G: none (the paper) | bicubic (G's output is added to the
                                 # bicubic upscaling of its input, VDSR's residual learning: the low
                                 # frequencies come for free, so a short budget goes to the detail; not the paper)
        "D_WIDTH": 64,           # SRGAN D's first width (64 -> 512)
        "D_DENSE": 1024,         # SRGAN D's dense layer
        "SRCNN_WIDTHS": [64, 32],
        "SRCNN_KERNELS": [9, 1, 5],
        "OPTIMIZER": "adam",     # srcnn: adam | sgd (the paper's: momentum 0.9, the last layer's rate x 0.1)
        "LOSS_WEIGHTS": "paper", # srgan: paper (VGG54 x 0.006 + 1e-3 adversarial) | paper_mse (the paper's
                                 # SRGAN-MSE: MSE + 1e-3 adversarial, no VGG file) | leftthomas (+ MSE x 1,
                                 # TV x 2e-8) | tensorlayer (MSE x 1 + VGG x 2e-6 + 1e-3 adversarial) | custom
                                 # (the four coefficients below; they are read only with custom)
        "MSE_COEF": 0.0,
        "VGG_COEF": 0.006,       # the paper rescales VGG features by 1/12.75: MSE x 1/12.75^2
        "ADV_COEF": 0.001,
        "TV_COEF": 0.0,
        "VGG_LAYER": "relu5_4",  # the paper's VGG54; e.g. relu2_2 for VGG22
        "VGG_WEIGHTS": "models/vgg19-dcbb9e9d.pth",  # torchvision vgg19 state dict (features.* keys suffice)
    },
    "TEXT": {
        "CAPTIONS_PER_IMAGE": 10,
        "EMBEDDING_DIM": 256,
        "WORDS_NUM": 18,
        "WORD_EMB_DIM": 300,
        "DROPOUT": 0.5,
        "FC_LAYER": False,       # Linear after the RNN on word and sentence features
        "CLASSES_NUM": 81,       # OP-GAN: one-hot label width, the object classes + 1 for "no object" (COCO 81)
    },
    "DAMSM": {
        "IMAGE_ENCODER": "cnn",  # cnn (small, trained from scratch) | inception (frozen, ImageNet weights)
        "INCEPTION_WEIGHTS": "models/inception_v3_google-0cc3c7bd.pth",
        "CNN_DIM": 64,
        "FREEZE_BN": True,       # keep the frozen Inception in eval mode (the original let BN drift)
        "SWAP_NEGATIVES": 0,     # word-swapped hard negative captions per caption (0: AttnGAN's loss)
    },
    "AGING": {                   # face aging (aging_cycle: Fast-AgingGAN's defaults, its config's names in README)
        "DOMAIN_A": [18, 29],    # ages of domain A (young) read from UTKFace / CACD names (Fast-AgingGAN's CACD)
        "DOMAIN_B": [55, 120],   # ages of domain B (old); Fast-AgingGAN's UTKFace split: [18, 28] vs [40, 119]
        "AGE_GROUPS": [[11, 20], [21, 30], [31, 40], [41, 50], [51, 120]],  # IPCGAN's five groups
        "NGF": 32,               # ngf
        "NDF": 32,               # ndf
        "N_BLOCKS": 9,           # n_blocks: residual blocks of each generator
        "NETS": "fast_aginggan", # aging_cycle: fast_aginggan (its models.py: batch norm, averaged PatchGAN) | cyclegan
        "ADV_WEIGHT": 2.0,       # adv_weight
        "CYCLE_WEIGHT": 10.0,    # cycle_weight
        "IDENTITY_WEIGHT": 7.0,  # identity_weight
        "WEIGHT_DECAY": 0.0001,  # weight_decay of both Adams
        "SAMPLE_DIRECTION": "AtoB",  # which generator `ganstack sample` and serve use: AtoB (young to old) | BtoA
        # aging_conditional (IPCGAN): loss weights of the authors' code (gan_loss_weight, age_loss_weight);
        # FEATURE_WEIGHT is ours (their 0.5e-4 scales AlexNet conv5 activations, which cannot be loaded here)
        "GAN_WEIGHT": 75.0,
        "AGE_WEIGHT": 30.0,
        "FEATURE_WEIGHT": 60.0,  # faces-set sweep 20-200 (README): 20 ignores identity, 200 copies the input
        "SAMPLE_GROUP": -1,      # the AGE_GROUPS index `ganstack sample`, serve and eval age faces to; -1 = oldest
    },
    "MLFLOW": {                  # TRAIN.LOGGERS: [tensorboard, mlflow]
        "TRACKING_URI": "",      # '' = sqlite:///<OUTPUT_DIR>/mlflow.db; any MLflow URI (http://host:5000, a database)
        "EXPERIMENT": "ganstack",
        "ARTIFACT_LOCATION": "", # a new experiment's artifact root; '' = <OUTPUT_DIR>/mlartifacts
    },
    "SHAPES": {                  # the embedded shapes set DATA_DIR is generated as when missing
        "LEVEL": "scenes",       # single (one object, plain background) | scenes (1-3 objects) | crowded (3-8, 128 px)
        "SIZE": 0,               # image side in px; 0: the level's (64, crowded 128)
        "NUM_TRAIN": 2400,
        "NUM_TEST": 600,
    },
    "TEST": {
        "B_EXAMPLE": True,       # StackGAN++'s cfg key (grids or single images); sample.sh writes both
    },
    "EVAL": {
        "R_PRECISION_RUNS": 10,
        "R_PRECISION_CANDIDATES": 100,   # 1 true + 99 random captions
        "SPLIT": "test",
        "BATCH_SIZE": 100,
        # Generated-image metrics (ganstack eval on generator variants)
        "IMAGES_PER_CAPTION": 1,         # images generated for every caption of the split
        "NUM_IMAGES": 0,                 # 0: the protocol (30000 on birds/COCO, else every caption x IMAGES_PER_CAPTION)
        "INCEPTION_WEIGHTS": "",         # pt_inception-2015-12-05 weights file; empty: no Inception IS/FID/KID
        "IS_SPLITS": 10,
        "KID_SUBSETS": 100,
        "KID_SUBSET_SIZE": 1000,         # images per KID subset; both sets need at least this many
        "STATS_DIR": "models/stats",     # cached features of the real images
        "SAVE_IMAGES": False,            # also write the generated images as PNGs under output/<run>/eval/
        "BOX_IOU": False,                # shapes levels: also SOA's IoU scores (soa_c_iou, soa_i_iou), the objects' boxes
                                         # found by the shapes segmenter trained on the level's label maps (once,
                                         # cached beside the judge: about 3 minutes on one CPU core)
        # Semantic Object Accuracy from the official caption files (Hinz et al.; metrics/soa.py), run when
        # SOA_CAPTIONS names the folder of label_XX_<name>.pkl files; the detector is YOLOv3 from darknet files
        "SOA_CAPTIONS": "",
        "SOA_DETECTOR_CFG": "models/yolov3.cfg",
        "SOA_DETECTOR_WEIGHTS": "models/yolov3.weights",
        "SOA_DETECTOR_NAMES": "",        # a names file when the detector's classes are not COCO's 80
        "SOA_IMAGE_SIZE": 256,           # the detector's input size (SOA's 256)
        "SOA_IMAGES_PER_CAPTION": 3,     # person (label 00): 1 image for each of 30,000 drawn captions
        "SOA_MAX_CAPTIONS": 0,           # > 0: at most this many captions per class (quick looks, not comparable)
    },
}


class Config(dict):
    """A nested dict with attribute access: cfg.TRAIN.BATCH_SIZE."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __deepcopy__(self, memo):
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        return {k: v.to_dict() if isinstance(v, Config) else copy.deepcopy(v) for k, v in self.items()}

    def get_path(self, dotted: str) -> Any:
        node: Any = self
        for part in dotted.split("."):
            node = node[part]
        return node


def _wrap(d: dict) -> Config:
    return Config({k: _wrap(v) if isinstance(v, dict) else v for k, v in d.items()})


def _all_keys(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in schema.items():
        keys.append(prefix + k)
        if isinstance(v, dict):
            keys += _all_keys(v, prefix + k + ".")
    return keys


def _nearest(key: str) -> str:
    candidates = _all_keys(DEFAULTS)
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not match:  # compare the last component too: TRAIN.BATCHSIZE -> TRAIN.BATCH_SIZE
        tails = {c.split(".")[-1]: c for c in candidates}
        tail = difflib.get_close_matches(key.split(".")[-1], list(tails), n=1, cutoff=0.6)
        match = [tails[tail[0]]] if tail else []
    return f"; did you mean {match[0]}?" if match else ""


def _check_type(key: str, value: Any, default: Any, source: str) -> Any:
    """Return `value` converted to the default's type, or raise naming the key."""
    if default is None:
        return value
    if value is None and isinstance(default, str):
        return ""  # `KEY:` with nothing after it
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if key == "TRAIN.BATCH_SIZE" and isinstance(value, list):
            return value  # OP-GAN's per-object-count list; validate() checks it
    elif isinstance(default, float):
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):
                raise GanstackError(f"{source}: {key} must be a finite number, got {value!r}")
            return number
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list):
        if isinstance(value, list):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [value]  # OP-GAN's BATCH_SIZE may be a list or a number
        if isinstance(value, str) and key == "TRAIN.LOGGERS":
            return [value]  # --set TRAIN.LOGGERS=mlflow
    raise GanstackError(
        f"{source}: {key} must be {type(default).__name__} (like {default!r}), got {value!r}"
    )


# The OP-GAN and StackGAN++ authors' names for AttnGAN's keys: one setting, two spellings.
ALIASES = {"GAN.GEN_FEAT_DIM": "GAN.GF_DIM", "GAN.DISC_FEAT_DIM": "GAN.DF_DIM", "GAN.GLOBAL_Z_DIM": "GAN.Z_DIM",
           "GAN.TEXT_CONDITION_DIM": "GAN.CONDITION_DIM", "GAN.RESIDUAL_NUM": "GAN.R_NUM",
           "GAN.EMBEDDING_DIM": "GAN.CONDITION_DIM", "TEXT.DIMENSION": "TEXT.EMBEDDING_DIM",
           "TEST.SAMPLE_NUM": "EVAL.NUM_IMAGES"}


def _merge(base: dict, update: dict, schema: dict, source: str, prefix: str = "", root: tuple | None = None) -> None:
    root = root or (base, schema)
    for key, value in update.items():
        full = prefix + str(key)
        if full in ALIASES:
            target = ALIASES[full]
            if target.rsplit(".", 1)[0] != full.rsplit(".", 1)[0]:  # a key of another group
                _merge(root[0], _nest(target, value), root[1], source, "", root)
                continue
            full, key = target, target.rsplit(".", 1)[1]
        if key not in schema:
            shown = full if full.isprintable() and full.strip() == full and full else repr(full)
            raise GanstackError(f"{source}: unknown key {shown}{_nearest(full)}")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise GanstackError(f"{source}: {full} must be a mapping of keys, got {value!r}")
            _merge(base[key], value, default, source, full + ".", root)
        else:
            base[key] = _check_type(full, value, default, source)


class DuplicateKeyError(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(f"line {line}: key {key} given twice in one mapping (first on line "
                                            f"{seen[key]}); keep one")
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """The YAML at `path` and its _BASE_ ancestors, oldest first."""
    if not path.is_file():
        raise GanstackError(f"{path}: config file not found")
    if path.resolve() in chain:
        raise GanstackError(f"{path}: _BASE_ chain loops back to itself")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except UnicodeDecodeError as e:
        raise GanstackError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                            "a config is a YAML text file, e.g. cfg/attngan/shapes_single.yml") from None
    except DuplicateKeyError as e:
        raise GanstackError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # PyYAML's messages span lines
        raise GanstackError(f"{path}:{where} bad YAML ({problem})") from None
    if not isinstance(data, dict):
        raise GanstackError(f"{path}: a config must be a mapping of KEY: value, got {type(data).__name__}")
    layers = []
    base = data.pop("_BASE_", None)
    if base is not None and not isinstance(base, str):
        raise GanstackError(f"{path}: _BASE_ must be the path of another config file, got {base!r}")
    if base:
        layers += _read_yaml((path.parent / base), chain + (path.resolve(),))
    return layers + [(path, data)]


def parse_override(text: str) -> tuple[str, Any]:
    """`A.B=value` -> ("A.B", YAML-parsed value)."""
    if "=" not in text:
        raise GanstackError(f"--set {text!r}: expected KEY=VALUE, e.g. --set TRAIN.BATCH_SIZE=16")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (with its _BASE_ chain), then --set overrides."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        for layer_path, data in _read_yaml(Path(path)):
            _merge(cfg, data, DEFAULTS, str(layer_path))
    for text in overrides:
        key, value = parse_override(text)
        _merge(cfg, _nest(key, value), DEFAULTS, f"--set {key}")
    cfg = _wrap(cfg)
    if not cfg.RUN_NAME:
        cfg.RUN_NAME = _default_run_name(path)
    validate(cfg)
    return cfg


def config_from_dict(data: dict, source: str) -> Config:
    """A resolved config saved as a dict (a checkpoint's "config"), checked against the schema."""
    if not isinstance(data, dict):
        raise GanstackError(f"{source}: holds no config mapping")
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, data, DEFAULTS, source)
    cfg = _wrap(cfg)
    validate(cfg)
    return cfg


def _default_run_name(path: str | Path | None) -> str:
    if path is None:
        return "default"
    p = Path(path)
    return f"{p.parent.name}_{p.stem}" if p.parent.name not in ("", ".", "cfg") else p.stem


LOGGERS = ("tensorboard", "mlflow")
_CHOICES = {
    "TRAIN.PRECISION": ("fp32", "bf16", "fp16", "auto"),
    "TRAIN.LR_SCHEDULE": ("auto", "none", "exponential", "linear", "cosine", "step", "plateau"),
    "RNN_TYPE": ("LSTM", "GRU"),
    "DAMSM.IMAGE_ENCODER": ("cnn", "inception"),
    "SHAPES.LEVEL": ("single", "scenes", "crowded"),
    "EMBEDDING_TYPE": ("cnn-rnn", "cnn-gru", "skip-thought", "damsm"),
    "GAN.NETWORK_TYPE": ("default",),
    "GAN.TYPE": ("gan", "wgan", "wgan-gp", "vanilla_gan", "vanilla_wgan"),
    "GAN.ADV_LOSS": ("auto", "bce", "lsgan", "hinge", "wasserstein"),
    "GAN.D_NORM": ("auto", "batch", "layer", "spectral", "none"),
    "GAN.WRONG_BOX_IMAGES": ("fake", "real"),
    "GAN.INIT": ("authors", "pytorch"),
    "GAN.D_CONDITION": ("mu", "embedding"),
    "AGING.SAMPLE_DIRECTION": ("AtoB", "BtoA"),
    "AGING.NETS": ("fast_aginggan", "cyclegan"),
    "GAN.LOSS": ("vanilla", "lsgan", "hinge", "wgangp"),
    "DATA.DATASET_MODE": ("aligned", "unaligned"),
    "DATA.DIRECTION": ("AtoB", "BtoA"),
    "DATA.PREPROCESS": ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"),
    "PIX2PIX.NET_G": ("unet", "resnet_6blocks", "resnet_9blocks"),
    "PIX2PIX.NET_D": ("basic", "n_layers", "pixel", "multiscale"),
    "PIX2PIX.NORM": ("batch", "instance", "none"),
    "PIX2PIX.INIT_TYPE": ("normal", "xavier", "kaiming", "orthogonal"),
    "SR.SCALE": (2, 4, 8),
    "SR.CHANNELS": ("rgb", "y"),
    "SR.NORM": ("batch", "none"),
    "SR.GLOBAL_RESIDUAL": ("none", "bicubic"),
    "SR.DOWNSAMPLE": ("matlab", "pil"),
    "SR.OPTIMIZER": ("adam", "sgd"),
    "SR.LOSS_WEIGHTS": ("paper", "paper_mse", "leftthomas", "tensorlayer", "custom"),
}
_POSITIVE = ("TRAIN.BATCH_SIZE", "DEBUG_NUM_DATAPOINTS", "TREE.BASE_SIZE", "TREE.BRANCH_NUM", "TEXT.WORDS_NUM",
             "TEXT.CAPTIONS_PER_IMAGE", "TEXT.EMBEDDING_DIM", "TRAIN.SNAPSHOT_INTERVAL", "EVAL.IMAGES_PER_CAPTION",
             "EVAL.IS_SPLITS", "EVAL.KID_SUBSETS", "EVAL.KID_SUBSET_SIZE", "EVAL.BATCH_SIZE",
             "TRAIN.LOG_INTERVAL", "TRAIN.KEEP_CHECKPOINTS", "GAN.DITER", "GAN.Z_DIM", "GAN.R1_INTERVAL",
             "GAN.HARD_MISMATCH_K", "DATA.LOAD_SIZE", "DATA.CROP_SIZE", "DATA.INPUT_NC", "DATA.OUTPUT_NC",
             "PIX2PIX.NGF", "PIX2PIX.NDF",
             "PIX2PIX.N_LAYERS_D", "PIX2PIX.NUM_D", "TRAIN.LR_STEP_EPOCHS", "TRAIN.DIST_TIMEOUT",
             "SR.HR_CROP", "SR.CROPS_PER_IMAGE", "SR.NUM_BLOCKS", "SR.WIDTH", "SR.D_WIDTH", "SR.D_DENSE", "SR.INCEPTION_PATCH",
             "GAN.LOCAL_Z_DIM", "GAN.INIT_LABEL_DIM", "GAN.NEXT_LABEL_DIM", "TEXT.CLASSES_NUM",
             "EVAL.SOA_IMAGE_SIZE", "EVAL.SOA_IMAGES_PER_CAPTION")


def _age_range(value) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in value) and 0 <= value[0] <= value[1])


def _validate_ages(aging) -> None:
    for key in ("DOMAIN_A", "DOMAIN_B"):
        if not _age_range(aging[key]):
            raise GanstackError(f"config: AGING.{key} must be [youngest, oldest] in years, got {aging[key]!r}")
    groups = aging.AGE_GROUPS
    if not groups or not all(_age_range(g) for g in groups):
        raise GanstackError(f"config: AGING.AGE_GROUPS must be a list of [youngest, oldest] ranges, got {groups!r}")


def validate(cfg: Config) -> None:
    for key, choices in _CHOICES.items():
        if cfg.get_path(key) not in choices:
            raise GanstackError(f"config: {key}={cfg.get_path(key)!r} is not one of {', '.join(map(str, choices))}")
    for key in _POSITIVE:
        value = cfg.get_path(key)
        if isinstance(value, (int, float)) and value <= 0:
            raise GanstackError(f"config: {key} must be > 0, got {value}")
    if cfg.GAN.R1_GAMMA < 0:
        raise GanstackError(f"config: GAN.R1_GAMMA must be >= 0 (0 turns R1 off), got {cfg.GAN.R1_GAMMA}")
    for key in ("KL", "UNCOND_LOSS", "COLOR_LOSS"):
        if cfg.TRAIN.COEFF[key] < 0:
            raise GanstackError(f"config: TRAIN.COEFF.{key} must be >= 0 (0 turns the term off), got {cfg.TRAIN.COEFF[key]}")
    if cfg.TRAIN.NET_D:
        raise GanstackError(f"config: TRAIN.NET_D={cfg.TRAIN.NET_D}: the authors' netD files are not read; training "
                            "resumes from ganstack checkpoints (set TRAIN.NET_D: '')")
    if not 0 <= cfg.GAN.HARD_MISMATCH <= 1:
        raise GanstackError(f"config: GAN.HARD_MISMATCH must lie in [0, 1] (0 turns it off), "
                            f"got {cfg.GAN.HARD_MISMATCH}")
    unknown = [x for x in cfg.TRAIN.LOGGERS if x not in LOGGERS]
    if unknown:
        raise GanstackError(f"config: TRAIN.LOGGERS names {', '.join(map(repr, unknown))}; "
                            f"choose from {', '.join(LOGGERS)}")
    if cfg.DATA.LABEL_NC < 0 or (cfg.DATA.LABEL_NC and cfg.DATA.INPUT_NC != 3):
        raise GanstackError(f"config: DATA.LABEL_NC={cfg.DATA.LABEL_NC} with DATA.INPUT_NC={cfg.DATA.INPUT_NC}: "
                            "LABEL_NC is 0 (off) or the class count of an RGB palette label map (INPUT_NC 3)")
    if not 0 <= cfg.DATA.ROTATION <= 360:
        raise GanstackError(f"config: DATA.ROTATION must lie in [0, 360] degrees (0 turns it off), got {cfg.DATA.ROTATION}")
    _validate_sr(cfg.SR)
    _validate_ages(cfg.AGING)
    _validate_layouts(cfg)
    if cfg.TEXT.EMBEDDING_DIM % 2:
        raise GanstackError(f"config: TEXT.EMBEDDING_DIM must be even (two RNN directions), got {cfg.TEXT.EMBEDDING_DIM}")
    from .variants import known_variants  # late: variants import this module
    if cfg.VARIANT not in known_variants():
        match = difflib.get_close_matches(cfg.VARIANT, known_variants(), n=1)
        hint = f"; did you mean {match[0]}?" if match else ""
        raise GanstackError(f"config: VARIANT={cfg.VARIANT!r} is not one of {', '.join(known_variants())}{hint}")


def _validate_layouts(cfg: Config) -> None:
    if not 1 <= cfg.MAX_OBJECTS <= 10:
        raise GanstackError(f"config: MAX_OBJECTS={cfg.MAX_OBJECTS}: OP-GAN's layouts hold 1 to 10 objects")
    if cfg.GAN.INIT_LABEL_DIM < 8 or cfg.GAN.LAYOUT_SPATIAL_DIM not in (8, 16, 32, 64):
        raise GanstackError(f"config: GAN.INIT_LABEL_DIM={cfg.GAN.INIT_LABEL_DIM} (at least 8) and GAN.LAYOUT_SPATIAL_DIM="
                            f"{cfg.GAN.LAYOUT_SPATIAL_DIM} (8, 16, 32 or 64) feed three halving convs; the authors': 100, 16")
    sizes = cfg.TRAIN.BATCH_SIZE
    if isinstance(sizes, list):  # OP-GAN's form: [24], or one batch size per object count 0, 1, 2, ...
        if not sizes or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
            raise GanstackError(f"config: TRAIN.BATCH_SIZE={sizes}: a list holds positive batch sizes, one per "
                                "object count (0, 1, 2, ... objects) with TRAIN.OPTIMIZE_DATA_LOADING")
        if not cfg.TRAIN.OPTIMIZE_DATA_LOADING:
            if len(sizes) != 1:
                raise GanstackError(f"config: TRAIN.BATCH_SIZE={sizes} gives a batch size per object count, which "
                                    "needs TRAIN.OPTIMIZE_DATA_LOADING: true (or give one number)")
            cfg.TRAIN.BATCH_SIZE = sizes[0]
    elif cfg.TRAIN.OPTIMIZE_DATA_LOADING:
        cfg.TRAIN.BATCH_SIZE = [sizes]  # one size for every object count: batches still grouped


def _validate_sr(sr: Config) -> None:
    if sr.LOSS_WEIGHTS != "custom":
        for key in ("MSE_COEF", "VGG_COEF", "ADV_COEF", "TV_COEF"):
            if sr[key] != DEFAULTS["SR"][key]:
                raise GanstackError(f"config: SR.{key}={sr[key]} is read only with SR.LOSS_WEIGHTS=custom (now "
                                    f"{sr.LOSS_WEIGHTS}); set SR.LOSS_WEIGHTS: custom to weigh the terms yourself")
    if len(sr.SRCNN_WIDTHS) != 2 or len(sr.SRCNN_KERNELS) != 3 or \
            not all(isinstance(v, int) and v > 0 for v in [*sr.SRCNN_WIDTHS, *sr.SRCNN_KERNELS]):
        raise GanstackError(f"config: SR.SRCNN_WIDTHS (two widths) and SR.SRCNN_KERNELS (three odd sizes) must be "
                            f"positive integers, got {sr.SRCNN_WIDTHS} and {sr.SRCNN_KERNELS}")
    if any(k % 2 == 0 for k in sr.SRCNN_KERNELS):
        raise GanstackError(f"config: SR.SRCNN_KERNELS={sr.SRCNN_KERNELS}: kernels must be odd (same-size padding)")
    from .nets.vgg import layer_indices  # late: torch
    if sr.VGG_LAYER not in layer_indices():
        raise GanstackError(f"config: SR.VGG_LAYER={sr.VGG_LAYER!r} is not a VGG19 layer; use conv<i>_<j> or "
                            "relu<i>_<j> with i 1-5 (the paper's relu5_4, or relu2_2)")
    if sr.HR_CROP % sr.SCALE:
        raise GanstackError(f"config: SR.HR_CROP={sr.HR_CROP} must be a multiple of SR.SCALE={sr.SCALE}")


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
