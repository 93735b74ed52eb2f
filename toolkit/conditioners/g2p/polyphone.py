"""Polyphonic-character disambiguation with the upstream ONNX BERT (g2p_chinese_model/).

The model reads `[CLS]` + one id per character of the (normalised) Mandarin run and returns, for
every character, scores over the polyphone classes of polydict.json; the class of the asked
character is the arg-max over all classes (upstream does not restrict it to that character's
readings). Class k (0-based) is polydict["k+1"], e.g. "乐{le4}".
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from ...optional import require
from .data import data_file


class PolyphonePredictor:
    def __init__(self) -> None:
        ort = require("onnxruntime", "text", "Mandarin polyphone disambiguation")
        self.char_ids = self._load_bert_vocab()
        self.unknown_id = self.char_ids["[UNK]"]
        self.cls_id = self.char_ids["[CLS]"]
        with open(data_file("g2p_chinese_model/polydict.json"), encoding="utf-8") as fh:
            self.class_to_reading = json.load(fh)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(data_file("g2p_chinese_model/poly_bert_model.onnx")), sess_options=options,
            providers=["CPUExecutionProvider"])

    @staticmethod
    def _load_bert_vocab() -> dict[str, int]:
        ids: dict[str, int] = {}
        with open(data_file("g2p_chinese_model/vocab.txt"), encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                ids[line.rstrip("\n")] = index  # a repeated entry keeps its last index, as BERT's loader does
        return ids

    def _scores(self, text: str) -> np.ndarray:
        """The model's scores for a text, memoised per instance (the same phrase recurs across lines)."""
        memo = self.__dict__.setdefault("_memo", {})
        if text not in memo:
            if len(memo) >= 4096:
                memo.clear()
            memo[text] = self._run(text)
        return memo[text]

    def _run(self, text: str) -> np.ndarray:
        ids = [self.cls_id] + [self.char_ids.get(ch, self.unknown_id) for ch in text]
        out = self.session.run(["outputs"], {"input_ids": np.asarray([ids], dtype=np.int32)})[0]
        return out[0]  # [len(text), classes]: one row per character (the [CLS] position is not returned)

    def pinyin(self, text: str, index: int) -> str:
        """Numbered pinyin (e.g. 'le4') of text[index] in the context of `text`."""
        label = self.class_to_reading[str(int(np.argmax(self._scores(text)[index])) + 1)]
        return label[label.index("{") + 1:-1]


@lru_cache(maxsize=1)
def polyphone_predictor() -> PolyphonePredictor:
    return PolyphonePredictor()
