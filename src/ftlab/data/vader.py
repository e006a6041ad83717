"""The VADER sentiment lexicon (vaderSentiment package): 7,520 entries (7,506 distinct tokens) with
the mean valence of ten human ratings, from -3.9 to 3.4. Real, small, offline: the default task."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ftlab.data.base import LoadedData, SplitDataModule, hash_bytes
from ftlab.errors import FtlabError
from ftlab.names import CLASSIFICATION, REGRESSION


def lexicon_text() -> str:
    return (
        resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    )


def parse_lexicon(text: str) -> tuple[list[str], np.ndarray]:
    """(tokens, mean valences) from the tab-separated lexicon: token, mean, std, ratings.

    The file lists 14 tokens twice (e.g. "lol", "ok"), each time with its own ten ratings. They
    are merged into one example with the mean of both panels, so a word can never sit in the
    training and the test split at once.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0]:
            sums[fields[0]] = sums.get(fields[0], 0.0) + float(fields[1])
            counts[fields[0]] = counts.get(fields[0], 0) + 1
    tokens = list(sums)
    return tokens, np.asarray([sums[t] / counts[t] for t in tokens], dtype=np.float32)


class VaderDataModule(SplitDataModule):
    """`task=regression` predicts the mean valence; `task=polarity` classifies negative/positive
    words, dropping the neutral ones with |valence| <= `neutral_band`."""

    modality = "text"

    def __init__(
        self,
        task: str = REGRESSION,
        neutral_band: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.vader_task = str(getattr(task, "value", task))
        self.neutral_band = neutral_band

    def load(self) -> LoadedData:
        text = lexicon_text()
        tokens, valences = parse_lexicon(text)
        content_hash = hash_bytes(text, self.vader_task, str(self.neutral_band))
        if self.vader_task == REGRESSION:
            return LoadedData(tokens, valences, REGRESSION, content_hash)
        if self.vader_task != "polarity":
            raise FtlabError(f"data.task must be regression or polarity (got {self.vader_task})")
        keep = np.abs(valences) > self.neutral_band
        labels = (valences[keep] > 0).astype(np.int64)
        kept = [token for token, k in zip(tokens, keep, strict=True) if k]
        return LoadedData(
            kept, labels, CLASSIFICATION, content_hash, class_names=["negative", "positive"]
        )
