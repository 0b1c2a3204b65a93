"""Captions (tokenizer, vocabulary, captions.pickle incl. Python 2 files) and the AttnGAN-layout reader."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from conftest import py2_pickle_of_strings
from ganstack.data import attngan
from ganstack.data.pickles import load_pickle
from ganstack.data.text import Vocabulary, load_captions, tokenize
from ganstack.errors import GanstackError


def reader(data_dir, split="train", **kw):
    args = dict(image_sizes=[32], words_num=8, captions_per_image=5, augment=True, flip=True)
    args.update(kw)
    return attngan.TextImageDataset(data_dir, split, **args)


def test_tokenizer_lowercases_and_drops_punctuation_and_non_ascii():
    assert tokenize("A Red, round  circle—über!") == ["a", "red", "round", "circle", "ber"]


def test_tokenizer_splits_as_nltks_regexp_tokenizer_that_attngan_uses():
    from nltk.tokenize import RegexpTokenizer

    nltk_words = RegexpTokenizer(r"\w+")
    texts = ["A Red, round  circle—über!", "this bird's wing_bar is\nyellow;2nd\tline",
             "caf\u00e9 na\u00efve \u00d7 \u4e2d\u6587 x1_y2", "", "...", "\ufffd\ufffdtail"]
    for text in texts:
        expected = [w.encode("ascii", "ignore").decode("ascii")
                    for w in nltk_words.tokenize(text.replace("\ufffd\ufffd", " ").lower())]
        assert tokenize(text) == [w for w in expected if w]


def test_vocabulary_unknown_words_warn_and_empty_caption_errors():
    vocab = Vocabulary.build([["a", "red", "circle"]])
    with pytest.warns(UserWarning, match="left out: purple"):
        ids = vocab.encode("a purple circle")
    assert vocab.decode(ids) == "a circle"
    with pytest.raises(GanstackError, match="has no words"):
        vocab.encode(" ... ")


def test_python2_pickles_load(tmp_path):
    path = tmp_path / "filenames.pickle"
    path.write_bytes(py2_pickle_of_strings(["002.Laysan_Albatross/Laysan_Albatross_0002_1027", "caf\xe9"]))
    assert load_pickle(path) == ["002.Laysan_Albatross/Laysan_Albatross_0002_1027", "caf\xe9"]


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(b"\x80\x02cposix\nsystem\nq\x00U\x04trueq\x01\x85q\x02Rq\x03.")
    with pytest.raises(GanstackError, match="evil.pickle"):
        load_pickle(path)


def test_coco_layout_builds_attngan_captions_pickle(coco_dir):
    ds = reader(coco_dir)
    assert len(ds) == 24 and (coco_dir / "captions.pickle").is_file()
    train, test, ixtoword, wordtoix = load_pickle(coco_dir / "captions.pickle")
    assert len(train) == 24 * 5 and len(test) == 8 * 5 and ixtoword[0] == "<end>" and wordtoix["<end>"] == 0
    assert all(0 not in c for c in train)
    again = load_captions(coco_dir / "captions.pickle")
    assert again.vocab.decode(again.train[0]) == " ".join(tokenize((coco_dir / "text" / f"{ds.keys[0]}.txt")
                                                                   .read_text().splitlines()[0]))
    item = ds[(3, 1234)]
    assert item["images"][0].shape == (3, 32, 32) and -1 <= item["images"][0].min() <= item["images"][0].max() <= 1
    assert item["class_id"] == 3  # COCO has no class_info: one class per image
    same = ds[(3, 1234)]
    assert torch.equal(item["images"][0], same["images"][0]) and torch.equal(item["caption"], same["caption"])


def test_birds_layout_crops_to_box_and_reads_classes(cub_dir):
    ds = reader(cub_dir, split="test", captions_per_image=10, augment=False, image_sizes=[16, 32])
    assert ds.boxes is not None and list(ds.class_ids) == [1, 2, 3, 1, 2, 3]
    item = ds[0]
    assert [t.shape[-1] for t in item["images"]] == [16, 32]
    box = ds.boxes[ds.keys[0]]
    assert box == [10.0, 12.0, 30.0, 20.0]


def test_unreadable_images_are_skipped_with_a_warning_and_counted(coco_dir):
    ds = reader(coco_dir)
    ds.image_path(1).write_bytes(b"not a jpeg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = attngan.collate([ds[(i, i)] for i in range(4)])
    assert batch["skipped"] == 1 and batch["size"] == 3 and batch["caption"].shape == (3, 8)
    assert any("unreadable image skipped" in str(w.message) for w in caught)


def test_captions_file_with_too_few_captions_names_the_file(coco_dir):
    ds_key = reader(coco_dir).keys[0]
    (coco_dir / "captions.pickle").unlink()
    (coco_dir / "text" / f"{ds_key}.txt").write_text("only one caption\n")
    with pytest.raises(GanstackError, match=f"{ds_key}.txt: has 1 captions but TEXT.CAPTIONS_PER_IMAGE is 5"):
        reader(coco_dir)


def test_long_captions_keep_a_random_ordered_subset():
    from ganstack.data.text import pad_caption
    ids, length = pad_caption(list(range(1, 21)), 8, np.random.default_rng(0))
    assert length == 8 and list(ids) == sorted(ids) and len(set(ids)) == 8
