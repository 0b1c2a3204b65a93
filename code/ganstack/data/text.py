"""Captions: tokenizer, vocabulary and AttnGAN's captions.pickle.

captions.pickle is ``[train_captions, test_captions, ixtoword, wordtoix]``:
captions are lists of word ids in filename order (CAPTIONS_PER_IMAGE per
image), id 0 is ``<end>`` and never appears inside a caption. It is built from
``DATA_DIR/text/<key>.txt`` when missing, exactly as AttnGAN does, and files
written by Python 2 (latin1 strings) load too.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GanstackError
from .pickles import dump_pickle, load_pickle

# AttnGAN tokenizes with nltk's RegexpTokenizer(r"\w+"), which is this findall with
# these flags (tests/test_text.py checks the two agree); importing nltk costs every
# process over a second now that it pulls in scipy and scikit-learn.
_WORDS = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.DOTALL)
END = "<end>"


def tokenize(caption: str) -> list[str]:
    """Lower-case word tokens, non-ASCII characters dropped (as AttnGAN)."""
    caption = caption.replace("\ufffd\ufffd", " ")
    tokens = (t.encode("ascii", "ignore").decode("ascii") for t in _WORDS.findall(caption.lower()))
    return [t for t in tokens if t]


@dataclass
class Vocabulary:
    ixtoword: dict[int, str]
    wordtoix: dict[str, int]

    @classmethod
    def build(cls, tokenized: list[list[str]]) -> "Vocabulary":
        words = sorted({w for caption in tokenized for w in caption})
        ixtoword = {0: END}
        ixtoword.update({i + 1: w for i, w in enumerate(words)})
        return cls(ixtoword, {w: i for i, w in ixtoword.items()})

    @classmethod
    def from_words(cls, words: list[str]) -> "Vocabulary":
        """Word i + 1 is words[i] (id 0 is the end token), in the order given."""
        ixtoword = {0: END}
        ixtoword.update({i + 1: w for i, w in enumerate(words)})
        return cls(ixtoword, {w: i for i, w in ixtoword.items()})

    def __len__(self) -> int:
        return len(self.ixtoword)

    def ids(self, tokens: list[str]) -> list[int]:
        return [self.wordtoix[w] for w in tokens if w in self.wordtoix]

    def encode(self, caption: str) -> list[int]:
        """Word ids of free text; unknown words are dropped with a warning."""
        tokens = tokenize(caption)
        if not tokens:
            raise GanstackError(f"caption {caption!r} has no words; give a sentence such as 'a red circle at the top'")
        unknown = [w for w in tokens if w not in self.wordtoix]
        if unknown:
            warnings.warn(f"caption {caption!r}: words not in the vocabulary are left out: {', '.join(unknown)}",
                          stacklevel=2)
        ids = self.ids(tokens)
        if not ids:
            raise GanstackError(f"caption {caption!r}: none of its words are in the vocabulary")
        return ids

    def decode(self, ids) -> str:
        return " ".join(self.ixtoword[int(i)] for i in ids if int(i) != 0)


def read_caption_file(path: Path, captions_per_image: int) -> list[list[str]]:
    """The first `captions_per_image` non-empty captions of one text/<key>.txt."""
    if not path.is_file():
        raise GanstackError(f"{path}: caption file not found (expected DATA_DIR/text/<key>.txt)")
    data = path.read_bytes()
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as e:  # e.g. a Latin-1 file among UTF-8 ones: its other words still count
        raw = data.decode("utf-8", errors="replace")
        warnings.warn(f"{path}: not UTF-8 (byte {e.start}); undecodable bytes dropped from its words",
                      stacklevel=2)
    captions = [tokens for tokens in (tokenize(line) for line in raw.split("\n")) if tokens]
    if len(captions) < captions_per_image:
        raise GanstackError(
            f"{path}: has {len(captions)} captions but TEXT.CAPTIONS_PER_IMAGE is {captions_per_image}; "
            "lower TEXT.CAPTIONS_PER_IMAGE or add captions")
    return captions[:captions_per_image]


@dataclass
class CaptionSet:
    train: list[list[int]]
    test: list[list[int]]
    vocab: Vocabulary

    def split(self, name: str) -> list[list[int]]:
        return self.train if name == "train" else self.test


def build_captions(data_dir: Path, train_keys: list[str], test_keys: list[str],
                   captions_per_image: int) -> CaptionSet:
    def read(keys):
        out = []
        for key in keys:
            out += read_caption_file(data_dir / "text" / f"{key}.txt", captions_per_image)
        return out

    train_tok, test_tok = read(train_keys), read(test_keys)
    vocab = Vocabulary.build(train_tok + test_tok)
    return CaptionSet([vocab.ids(c) for c in train_tok], [vocab.ids(c) for c in test_tok], vocab)


def save_captions(captions: CaptionSet, path: Path) -> None:
    dump_pickle([captions.train, captions.test, captions.vocab.ixtoword, captions.vocab.wordtoix], path)


def load_captions(path: Path) -> CaptionSet:
    data = load_pickle(path)
    if not (isinstance(data, (list, tuple)) and len(data) == 4):
        raise GanstackError(f"{path}: expected [train_captions, test_captions, ixtoword, wordtoix]; "
                            "delete it to rebuild it from text/")
    train, test, ixtoword, wordtoix = data
    as_ids = lambda caps: [[int(i) for i in c] for c in caps]  # noqa: E731 - numpy ints from old pickles
    return CaptionSet(as_ids(train), as_ids(test),
                      Vocabulary({int(k): str(v) for k, v in ixtoword.items()},
                                 {str(k): int(v) for k, v in wordtoix.items()}))


def load_or_build_captions(data_dir: Path, train_keys: list[str], test_keys: list[str],
                           captions_per_image: int) -> CaptionSet:
    path = data_dir / "captions.pickle"
    if path.is_file():
        captions = load_captions(path)
        for name, keys in (("train", train_keys), ("test", test_keys)):
            if len(captions.split(name)) != len(keys) * captions_per_image:
                raise GanstackError(
                    f"{path}: has {len(captions.split(name))} {name} captions, expected "
                    f"{len(keys)} images x {captions_per_image}; check TEXT.CAPTIONS_PER_IMAGE or delete the file")
        return captions
    captions = build_captions(data_dir, train_keys, test_keys, captions_per_image)
    save_captions(captions, path)
    return captions


def pad_caption(ids: list[int], words_num: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Fixed-length caption; longer ones keep a random ordered subset of words (AttnGAN)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros(words_num, dtype=np.int64)
    if len(ids) <= words_num:
        out[:len(ids)] = ids
        return out, max(len(ids), 1)
    keep = np.sort(rng.permutation(len(ids))[:words_num])
    out[:] = ids[keep]
    return out, words_num
