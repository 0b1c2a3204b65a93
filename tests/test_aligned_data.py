"""pix2pix's on-disk image-to-image layouts (data/aligned.py), on small folders written here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstack.cli import main
from ganstack.config import load_config
from ganstack.data.aligned import AlignedDataset, UnalignedDataset, image_dataset
from ganstack.data.attngan import collate
from ganstack.data.pickles import load_pickle
from ganstack.data.sampler import ResumableSampler
from ganstack.data.synthetic import shapes_aligned
from ganstack.errors import GanstackError


def noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)


def write_pairs(folder: Path, n: int, h: int, w: int, *, ext: str = "png", same: bool = False,
                extra_column: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Facades' layout: <i>.<ext> of 2w x h, A on the left, B on the right (B = A when `same`)."""
    folder.mkdir(parents=True)
    pairs = []
    for i in range(n):
        a = noise(h, w, 2 * i)
        b = a if same else noise(h, w, 2 * i + 1)
        parts = [a, b] + ([noise(h, 1, 99)] if extra_column else [])
        Image.fromarray(np.concatenate(parts, axis=1)).save(folder / f"{i}.{ext}")
        pairs.append((a, b))
    return pairs


def cfg_for(root: Path, *overrides: str):
    return load_config(None, [f"DATA_DIR={root}", *overrides])


def as_uint8(t: torch.Tensor) -> np.ndarray:
    """[-1, 1] CHW -> uint8 HWC, as written."""
    return ((t + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_split_at_half_width_and_direction(tmp_path):
    pairs = write_pairs(tmp_path / "train", 2, 20, 24, extra_column=True)  # odd width 49: last column ignored
    for direction, (first, second) in (("AtoB", (0, 1)), ("BtoA", (1, 0))):
        ds = image_dataset(cfg_for(tmp_path, "DATA.PREPROCESS=none", f"DATA.DIRECTION={direction}"), "train", False)
        sample = ds[1]
        assert sample["A"].shape == sample["B"].shape == (3, 20, 24)
        assert sample["A"].dtype == torch.float32 and sample["A"].min() >= -1 and sample["A"].max() <= 1
        assert np.array_equal(as_uint8(sample["A"]), pairs[1][first])
        assert np.array_equal(as_uint8(sample["B"]), pairs[1][second])
        assert sample["index"] == 1 and ds.path(1) == tmp_path / "train" / "1.png"


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop"])
def test_a_and_b_get_the_same_crop_and_flip(tmp_path, preprocess):
    write_pairs(tmp_path / "train", 1, 40, 40, same=True)
    ds = AlignedDataset(tmp_path, "train", preprocess=preprocess, load_size=44, crop_size=32)
    outputs = set()
    for seed in range(12):
        sample = ds[0, seed]
        assert sample["A"].shape == (3, 32, 32)
        assert torch.equal(sample["A"], sample["B"])
        outputs.add(sample["A"].numpy().tobytes())
    assert len(outputs) > 6  # crops and flips really vary


def test_flip_mirrors_the_image(tmp_path):
    pairs = write_pairs(tmp_path / "train", 1, 16, 16)
    ds = AlignedDataset(tmp_path, "train", preprocess="none")
    seen = {as_uint8(ds[0, seed]["A"]).tobytes() for seed in range(16)}
    assert seen == {pairs[0][0].tobytes(), pairs[0][0][:, ::-1].tobytes()}
    no_flip = AlignedDataset(tmp_path, "train", preprocess="none", flip=False)
    assert {as_uint8(no_flip[0, seed]["A"]).tobytes() for seed in range(8)} == {pairs[0][0].tobytes()}


def test_eval_is_deterministic_and_has_crop_size(tmp_path):
    pairs = write_pairs(tmp_path / "test", 2, 40, 36)
    for preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        ds = image_dataset(cfg_for(tmp_path, f"DATA.PREPROCESS={preprocess}", "DATA.LOAD_SIZE=48",
                                   "DATA.CROP_SIZE=32"), "test", False)
        first = ds[0, 1]
        assert first["A"].shape == first["B"].shape == (3, 32, 32)
        for seed in (2, 3, 4):
            assert torch.equal(ds[0, seed]["A"], first["A"]) and torch.equal(ds[0, seed]["B"], first["B"])
    crop = AlignedDataset(tmp_path, "test", preprocess="crop", crop_size=32, augment=False)
    assert np.array_equal(as_uint8(crop[0]["A"]), pairs[0][0][4:36, 2:34])  # centred


def test_same_seed_same_sample_other_seeds_other_crops(tmp_path):
    write_pairs(tmp_path / "train", 1, 40, 40)
    cfg = cfg_for(tmp_path, "DATA.PREPROCESS=crop", "DATA.CROP_SIZE=24", "TRAIN.FLIP=False")
    ds, again = image_dataset(cfg, "train", True), image_dataset(cfg, "train", True)
    assert torch.equal(ds[0, 7]["A"], again[0, 7]["A"]) and torch.equal(ds[0, 7]["B"], again[0, 7]["B"])
    crops = {ds[0, seed]["A"].numpy().tobytes() for seed in range(8)}
    assert len(crops) == 8


def test_none_keeps_rectangular_size(tmp_path):
    write_pairs(tmp_path / "train", 1, 40, 48)
    ds = image_dataset(cfg_for(tmp_path, "DATA.PREPROCESS=none"), "train", True)
    assert ds[0, 3]["A"].shape == ds[0, 3]["B"].shape == (3, 40, 48)


def test_scale_width_keeps_the_aspect(tmp_path):
    write_pairs(tmp_path / "train", 1, 30, 60)
    wide = AlignedDataset(tmp_path, "train", preprocess="scale_width", load_size=40, crop_size=16)
    assert wide[0, 1]["A"].shape == (3, 20, 40)  # 60x30 -> 40x20
    floored = AlignedDataset(tmp_path, "train", preprocess="scale_width", load_size=40, crop_size=24)
    assert floored[0, 1]["B"].shape == (3, 24, 40)  # height at least CROP_SIZE, as the original
    cropped = AlignedDataset(tmp_path, "train", preprocess="scale_width_and_crop", load_size=40, crop_size=16)
    assert cropped[0, 1]["A"].shape == (3, 16, 16)


def test_grey_input(tmp_path):
    pairs = write_pairs(tmp_path / "train", 1, 16, 16)
    for direction, source in (("AtoB", 0), ("BtoA", 1)):
        ds = AlignedDataset(tmp_path, "train", preprocess="none", augment=False, input_nc=1, direction=direction)
        sample = ds[0]
        assert sample["A"].shape == (1, 16, 16) and sample["B"].shape == (3, 16, 16)
        grey = np.asarray(Image.fromarray(pairs[0][source]).convert("L"))
        assert np.array_equal(as_uint8(sample["A"])[..., 0], grey)


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    (tmp_path / "train").mkdir()
    values = (np.arange(16 * 32).reshape(16, 32) * 127 + 1).astype(np.uint16)  # mostly off the 8-bit grid
    assert np.any(values % 257)
    Image.fromarray(values).save(tmp_path / "train" / "0.png")
    assert Image.open(tmp_path / "train" / "0.png").mode.startswith("I")
    ds = AlignedDataset(tmp_path, "train", preprocess="none", augment=False, input_nc=1, output_nc=1)
    sample = ds[0]
    back = np.concatenate([sample["A"][0].double().numpy(), sample["B"][0].double().numpy()], axis=1)
    assert np.array_equal(np.round((back + 1) / 2 * 65535), values)
    # resizing works on floats: a constant 1001 (3.9 in 8 bits) stays 1001, not 4 * 257
    Image.fromarray(np.full((16, 32), 1001, np.uint16)).save(tmp_path / "train" / "0.png")
    resized = AlignedDataset(tmp_path, "train", preprocess="resize_and_crop", crop_size=24, augment=False,
                             input_nc=1, output_nc=1)[0]["A"]
    assert resized.shape == (1, 24, 24)
    assert torch.allclose((resized.double() + 1) / 2 * 65535, torch.full_like(resized.double(), 1001.0), atol=0.05)


def test_grey_sixteen_bit_as_rgb_is_replicated(tmp_path):
    (tmp_path / "train").mkdir()
    values = np.full((8, 16), 40000, np.uint16)
    Image.fromarray(values).save(tmp_path / "train" / "0.png")
    sample = AlignedDataset(tmp_path, "train", preprocess="none", augment=False, input_nc=3, output_nc=4)[0]
    assert sample["A"].shape == (3, 8, 8) and sample["B"].shape == (4, 8, 8)
    assert torch.allclose(sample["A"], torch.full_like(sample["A"], 40000 / 65535 * 2 - 1))
    assert torch.allclose(sample["B"][3], torch.ones(8, 8))  # opaque alpha


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_npy_pair_with_five_channels(tmp_path, dtype):
    (tmp_path / "train").mkdir()
    rng = np.random.default_rng(0)
    scale = {"uint8": 255, "uint16": 65535, "float32": 1}[dtype]
    full = rng.uniform(0, 1, size=(12, 20, 5))
    arr = (full * scale).round().astype(dtype) if scale > 1 else full.astype(np.float32)
    np.save(tmp_path / "train" / "0.npy", arr)
    ds = image_dataset(cfg_for(tmp_path, "DATA.PREPROCESS=none", "DATA.INPUT_NC=5", "DATA.OUTPUT_NC=5",
                               "DATA.DIRECTION=BtoA"), "train", False)
    sample = ds[0]
    expect = torch.from_numpy(arr.astype(np.float64) / scale * 2 - 1).permute(2, 0, 1)
    assert sample["A"].shape == sample["B"].shape == (5, 12, 10)
    assert torch.allclose(sample["A"].double(), expect[:, :, 10:], atol=1e-6)  # BtoA: A is the right half
    assert torch.allclose(sample["B"].double(), expect[:, :, :10], atol=1e-6)
    assert AlignedDataset(tmp_path, "train", crop_size=8, load_size=12, input_nc=5, output_nc=5)[0, 1]["A"].shape \
        == (5, 8, 8)
    with pytest.raises(GanstackError, match=r"0\.npy: \.npy holds 5 channels.*set both to 5"):
        image_dataset(cfg_for(tmp_path, "DATA.INPUT_NC=5"), "train", False)  # OUTPUT_NC stays 3


def test_image_files_cannot_give_five_channels(tmp_path):
    write_pairs(tmp_path / "train", 1, 8, 8)
    with pytest.raises(GanstackError, match="1 \\(grey\\), 3 \\(RGB\\) or 4 \\(RGBA\\)"):
        image_dataset(cfg_for(tmp_path, "DATA.INPUT_NC=5"), "train", True)


def solid(folder: Path, colours: list[int], size: tuple[int, int]) -> None:
    folder.mkdir(parents=True)
    for i, c in enumerate(colours):
        Image.new("RGB", size, (c, 0, 0)).save(folder / f"{i:02d}.png")


def red(t: torch.Tensor) -> int:
    return int(as_uint8(t)[0, 0, 0])


def test_unaligned_folders(tmp_path):
    solid(tmp_path / "trainA", [10, 20, 30], (16, 12))
    solid(tmp_path / "trainB", [100, 110, 120, 130, 140], (20, 24))
    cfg = cfg_for(tmp_path, "DATA.DATASET_MODE=unaligned", "DATA.PREPROCESS=none")
    ds = image_dataset(cfg, "train", False)
    assert isinstance(ds, UnalignedDataset) and len(ds) == 5
    sample = ds[4]
    assert (red(sample["A"]), red(sample["B"])) == (20, 140)  # A[4 % 3], B[4]
    assert sample["A"].shape == (3, 12, 16) and sample["B"].shape == (3, 24, 20)  # each keeps its own size
    train = image_dataset(cfg, "train", True)
    assert red(train[0, 5]["B"]) == red(train[0, 5]["B"])
    assert len({red(train[0, seed]["B"]) for seed in range(20)}) > 2  # B drawn from the seed
    swapped = image_dataset(cfg_for(tmp_path, "DATA.DATASET_MODE=unaligned", "DATA.PREPROCESS=none",
                                    "DATA.DIRECTION=BtoA"), "train", False)
    assert (red(swapped[1]["A"]), red(swapped[1]["B"])) == (110, 20)  # trainB is the input
    cropped = UnalignedDataset(tmp_path, "train", preprocess="resize_and_crop", load_size=20, crop_size=16)
    assert cropped[2, 3]["A"].shape == cropped[2, 3]["B"].shape == (3, 16, 16)


def test_val_is_the_test_split_when_test_is_missing(tmp_path):
    write_pairs(tmp_path / "train", 2, 8, 8)
    write_pairs(tmp_path / "val", 3, 8, 8)
    ds = image_dataset(cfg_for(tmp_path, "DATA.PREPROCESS=none"), "test", False)
    assert len(ds) == 3 and ds.path(0).parent.name == "val"
    write_pairs(tmp_path / "test", 1, 8, 8)
    assert len(image_dataset(cfg_for(tmp_path, "DATA.PREPROCESS=none"), "test", False)) == 1


def test_damaged_file_warns_and_collate_drops_it(tmp_path):
    write_pairs(tmp_path / "train", 2, 16, 16)
    (tmp_path / "train" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "train" / "2.npy").write_bytes(b"\x93NUMPY broken")
    ds = AlignedDataset(tmp_path, "train", preprocess="none")
    for index in (1, 2):
        with pytest.warns(UserWarning, match=rf"{index}\.(png|npy): unreadable image skipped \("):
            assert ds[index, 0] is None
    batch = collate([ds[0, 0], None])
    assert batch["size"] == 1 and batch["skipped"] == 1 and batch["A"].shape == (1, 3, 16, 16)


def test_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(GanstackError, match="DATA_DIR=.*nowhere: folder not found"):
        image_dataset(cfg_for(tmp_path / "nowhere"), "train", True)
    with pytest.raises(GanstackError, match=f"{tmp_path / 'train'}: folder not found; expected .*A\\|B"):
        image_dataset(cfg_for(tmp_path), "train", True)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("no images here")
    with pytest.raises(GanstackError, match="train: holds no images") as err:
        image_dataset(cfg_for(tmp_path), "train", True)
    assert "\n" not in str(err.value)
    solid(tmp_path / "trainA", [1], (8, 8))
    with pytest.raises(GanstackError, match="trainB: folder not found; expected .*unaligned"):
        image_dataset(cfg_for(tmp_path, "DATA.DATASET_MODE=unaligned"), "train", True)
    with pytest.raises(GanstackError, match="LOAD_SIZE=16 is smaller than DATA.CROP_SIZE=32"):
        AlignedDataset(tmp_path, "train", load_size=16, crop_size=32)


def test_batches_through_the_resumable_sampler(tmp_path):
    write_pairs(tmp_path / "train", 5, 24, 24)
    ds = image_dataset(cfg_for(tmp_path, "DATA.LOAD_SIZE=20", "DATA.CROP_SIZE=16"), "train", True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, sampler=ResumableSampler(len(ds), seed=0, epoch=0),
                                         collate_fn=collate)
    batches = list(loader)
    assert [b["size"] for b in batches] == [2, 2, 1]
    assert batches[0]["A"].shape == batches[0]["B"].shape == (2, 3, 16, 16)
    again = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate,
                                                  sampler=ResumableSampler(len(ds), seed=0, epoch=0))))
    assert torch.equal(again["A"], batches[0]["A"])


def test_prepare_shapes_aligned_pairs(tmp_path):
    source, out = tmp_path / "shapes", tmp_path / "pairs"
    assert main(["prepare", "shapes", "--aligned", "--num-train", "6", "--num-test", "3", "--size", "32",
                 "--source", str(source), "--out", str(out)]) == 0
    files = sorted((out / "train").glob("*.png"))
    assert len(files) == 6 and len(list((out / "test").glob("*.png"))) == 3
    for path in files:
        pair = np.asarray(Image.open(path).convert("RGB"))
        assert pair.shape == (32, 64, 3)
        labels = np.asarray(Image.open(source / "labelmaps" / f"{path.stem}.png"))
        assert np.array_equal(shapes_aligned.decode_labelmap(pair[:, :32]), labels)

    ds = image_dataset(cfg_for(out, "DATA.PREPROCESS=none", "DATA.DIRECTION=AtoB"), "train", False)
    keys = [str(k) for k in load_pickle(source / "train" / "filenames.pickle")]
    index = [p.stem for p in files].index(keys[0])
    sample = ds[index]
    labels = np.asarray(Image.open(source / "labelmaps" / f"{keys[0]}.png"))
    photo = np.asarray(Image.open(source / "images" / f"{keys[0]}.jpg").convert("RGB"))
    assert np.array_equal(as_uint8(sample["A"]), shapes_aligned.colourise(labels))  # A: palette label map
    assert np.array_equal(as_uint8(sample["B"]), photo)  # B: the photo


def test_jpeg_pairs_in_name_order(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    smooth = np.linspace(0, 255, 32 * 16).reshape(16, 32).astype(np.uint8)  # JPEG keeps smooth ramps
    for name, shift in (("b.JPG", 60), ("a.jpeg", 0)):
        rgb = np.stack([np.roll(smooth, shift, axis=1)] * 3, axis=-1)
        Image.fromarray(rgb).save(folder / name, quality=95)
    ds = AlignedDataset(tmp_path, "train", preprocess="none", augment=False)
    assert [p.name for p in ds.files] == ["a.jpeg", "b.JPG"]
    got = as_uint8(ds[0]["A"]).astype(int)[..., 0]
    assert np.abs(got - smooth[:, :16]).mean() < 3
