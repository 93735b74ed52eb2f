"""Text prompts as T5 encoder tokens: stable-audio-tools' T5Conditioner on transformers' T5EncoderModel.

    ids, mask = tokenizer(text, truncation, max_length, padding="max_length")     (EOS appended, pad id 0)
    h = T5EncoderModel(ids, attention_mask=mask).last_hidden_state                (in `t5_dtype`, fp16 upstream)
    tokens = proj_out(h.float()) * mask                                            [B, max_length, output_dim]

proj_out is Linear(d_model, output_dim) when the widths differ (or project_out), else the identity (Stable
Audio Open: t5-base 768 == cond_dim 768, so a published checkpoint holds no key of this conditioner). The T5
itself stays outside the module tree, as upstream keeps it: its weights come from `model_path`, never from
a toolkit or Stable Audio Open checkpoint. Everything is local: `model_path` / `tokenizer_path` are folders
(a saved `T5EncoderModel` / `T5ForConditionalGeneration` and its fast tokenizer, e.g. a copy of t5-base);
nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..optional import require
from ..protocols import OUT_TOKENS, Conditioner
from ..registry import CONDITIONERS
from ..weights import load_strict

EXTRA = "muq"  # the setup.cfg extra that provides transformers + tokenizers


def _local_dir(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"t5_text: {what} folder {path} does not exist (give a local folder holding a saved "
                                "T5 model / tokenizer, e.g. a copy of t5-base; nothing is downloaded)")
    return path


@CONDITIONERS.register("t5_text")
class T5TextConditioner(Conditioner):
    """Text -> T5 encoder tokens + mask (stable-audio-tools' T5Conditioner), from local folders only.

    Args:
        output_dim: token width (Stable Audio Open: 768).
        model_path: folder of a saved T5 (its encoder is used); holds the tokenizer too unless tokenizer_path.
        tokenizer_path: folder of the fast tokenizer (tokenizer.json), if not in model_path.
        t5_config: instead of model_path, T5Config kwargs of a randomly initialised encoder (tests).
        max_length: tokens per prompt after truncation / padding (Stable Audio Open 1.0: 128, Small: 64).
        project_out: force the proj_out Linear even when d_model == output_dim.
        t5_dtype: the encoder's dtype; "float16" as upstream (which runs it in fp16 on every device), or
            "float32".
        key: the request / metadata field (default "prompt").
    prepare(text) -> token ids [max_length] int64 (a one-element list / tuple is unwrapped, as upstream).
    forward(ids [B, N]) -> (tokens [B, N, output_dim] float32, mask [B, N] bool); the mask is ids != pad id.
    null(B) -> zero tokens and an all-False mask (upstream's null embedding).
    """

    output_kind = OUT_TOKENS

    def __init__(self, output_dim: int = 768, model_path: str | None = None, *, tokenizer_path: str | None = None,
                 t5_config: Mapping[str, Any] | None = None, max_length: int = 128, project_out: bool = False,
                 t5_dtype: str = "float16", key: str = "prompt"):
        super().__init__()
        if (model_path is None) == (t5_config is None):
            raise ValueError("t5_text: give exactly one of model_path (a local folder with a saved T5) and t5_config "
                             "(T5Config kwargs of a random encoder)")
        if t5_dtype not in ("float16", "float32"):
            raise ValueError(f"t5_text: t5_dtype must be 'float16' or 'float32', got {t5_dtype!r}")
        transformers = require("transformers", EXTRA, "the T5 text conditioner")
        if model_path is not None:
            folder = _local_dir(model_path, "model_path")
            encoder = transformers.T5EncoderModel.from_pretrained(str(folder), local_files_only=True)
        else:
            encoder = transformers.T5EncoderModel(transformers.T5Config(**dict(t5_config)))
        encoder = encoder.eval().requires_grad_(False).to(getattr(torch, t5_dtype))
        object.__setattr__(self, "encoder", encoder)  # outside the module tree: no state-dict keys, as upstream
        tok_dir = tokenizer_path or model_path
        self.tokenizer = None
        if tok_dir is not None:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(_local_dir(tok_dir, "tokenizer_path")),
                                                                        local_files_only=True)
        self.key, self.max_length, self.output_dim = key, int(max_length), int(output_dim)
        self.t5_dim = int(encoder.config.d_model)
        pad = self.tokenizer.pad_token_id if self.tokenizer is not None else encoder.config.pad_token_id
        self.pad_token_id = 0 if pad is None else int(pad)
        self.proj_out = (nn.Linear(self.t5_dim, self.output_dim) if self.t5_dim != self.output_dim or project_out
                         else nn.Identity())

    def load_encoder_state(self, state: Mapping[str, torch.Tensor], source: str = "T5 weights") -> None:
        """Strictly load T5EncoderModel weights (keys `shared.weight`, `encoder.block.*`, ...)."""
        load_strict(self.encoder, {k: v.to(self.encoder.dtype) for k, v in state.items()}, source=source)

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """[B, max_length] ids: truncation to max_length (EOS kept), padding with the pad id."""
        if self.tokenizer is None:
            raise ValueError("t5_text was built from t5_config without a tokenizer: give tokenizer_path to tokenize "
                             "text, or pass token ids to forward")
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding="max_length",
                                 return_tensors="pt")
        return encoded["input_ids"].long()

    def prepare(self, value: Any, *, num_frames: int | None = None) -> torch.Tensor:
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(f"{self.key}: expected one text, got a sequence of {len(value)}")
            value = value[0]
        if not isinstance(value, str):
            raise ValueError(f"{self.key}: expected a text prompt, got {type(value).__name__}")
        return self.tokenize([value])[0]

    def forward(self, prepared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if prepared.dim() != 2:
            raise ValueError(f"{self.key}: forward takes token ids [B, N], not {list(prepared.shape)}")
        device = self.proj_out.weight.device if isinstance(self.proj_out, nn.Linear) else prepared.device
        ids = prepared.to(device=device, dtype=torch.long)
        mask = ids != self.pad_token_id
        self.encoder.to(device)
        with torch.no_grad():
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        tokens = self.proj_out(hidden.float()) * mask[..., None].float()
        return tokens, mask

    def null(self, batch_size: int, num_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(batch_size, self.max_length, self.output_dim),
                torch.zeros(batch_size, self.max_length, dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"key={self.key}, t5_dim={self.t5_dim}, output_dim={self.output_dim}, max_length={self.max_length}, "
                f"t5_dtype={self.encoder.dtype}")
