"""F5-TTS's DiT: AdaLN-zero blocks over mel frames, text as a character sequence padded to the frames.

State-dict keys equal upstream's (f5-tts `CFM.state_dict()`, tests/fixtures/reference/f5tts_keys.txt) without the
`transformer.` prefix, so published F5TTS_v1_Base checkpoints load with no key map
(toolkit.models.f5tts.checkpoints).

Data flow (golden/f5tts/README.txt):
  c  = time_embed(t)                                                             [B, dim]
  e  = text_embed(text + 1 curtailed / padded with 0 to T frames)                [B, T, text_dim]
       (ConvNeXt-V2 blocks; padding positions zeroed around every block, the padding mask taken
        BEFORE a text drop; with a frame mask, frames past an item's length are filler)
  h  = input_embed(cat[x, cond, e]) + conv position embedding (masked)           [B, T, dim]
  for block: h = DiT block (AdaLN-zero, attention with adjacent-pair RoPE, tanh-GELU MLP)
  out = proj_out(norm_out(h, c))                                                 (AdaLN, scale first)
Attention itself is unmasked (upstream's attn_mask_enabled=False); its output is zeroed on padding.
An optional generic `global` input (vectors added to the time embedding through an MLP) exists only when
`input_dims` sizes it; F5's own configurations leave it off, so the published keys are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..modules.adaln import AdaLayerNormFinal, AdaLayerNormZero
from ..modules.input_embedding import ConcatInputEmbedding
from ..modules.rotary import RotaryEmbedding, apply_rotary
from ..modules.text_embedding import ConvTextEmbedding
from ..modules.timestep import TimestepEmbedding
from ..protocols import INPUT_GLOBAL, OUT_FRAME_IDS, OUT_IDS, Backbone, InputSpec, generic_input
from ..registry import BACKBONES
from .drops import drop_masks

DROP_GROUPS = ("audio", "text")
INPUTS = {
    "text": InputSpec("text_tokens", accepts=(OUT_IDS, OUT_FRAME_IDS), required=True,
                      doc="character / pinyin ids padded with -1, cut or padded to the frames inside; or ids "
                          "already on the frames (0 = filler, e.g. DiffRhythm's lyrics)"),
    INPUT_GLOBAL: generic_input(INPUT_GLOBAL, doc="vectors added to the time embedding through an MLP"),
}
TEXT_MAX_POSITIONS = 8192  # upstream's precomputed text position table (freqs_cis [8192, text_dim])


class Attention(nn.Module):
    """Multi-head self-attention with biased projections; keys `to_q`, `to_k`, `to_v`, `to_out.0`."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(dropout)])

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, self.dim_head).transpose(1, 2)
                   for proj in (self.to_q, self.to_k, self.to_v))
        if rope is not None:
            cos, sin = rope
            q, k = apply_rotary(q, cos, sin, "pairs"), apply_rotary(k, cos, sin, "pairs")
        h = F.scaled_dot_product_attention(q, k, v)  # no attention mask, as upstream
        h = h.transpose(1, 2).reshape(b, t, -1).to(q.dtype)
        h = self.to_out[1](self.to_out[0](h))
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        return h


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> Dropout -> Linear; keys `ff.0.0`, `ff.2`."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = int(dim * mult)
        self.ff = nn.Sequential(nn.Sequential(nn.Linear(dim, inner), nn.GELU(approximate="tanh")),
                                nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)


class DiTBlock(nn.Module):
    """x += gate_msa * attn(AdaLN(x)); x += gate_mlp * ff(LN(x) * (1 + scale_mlp) + shift_mlp)."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int = 4, dropout: float = 0.1):
        super().__init__()
        self.attn_norm = AdaLayerNormZero(dim)
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.ff_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x (the residual stream) and c may be fp32 around bf16 blocks: the norms and modulations read them in
        # fp32, the projections get the block's dtype, and each branch is added in the stream's dtype
        dtype = self.attn_norm.linear.weight.dtype
        norm, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.attn_norm(x, c.to(dtype))
        x = x + gate_msa[:, None] * self.attn(norm.to(dtype), rope, mask)
        norm = self.ff_norm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.ff(norm.to(dtype))


def frame_text(text: torch.Tensor, frames: int, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Token ids [B, n] (pad -1) -> [B, T] ids shifted by one (0 = filler), cut / padded to T frames and, with
    per-item lengths, filler from each item's length on."""
    ids = text.long() + 1
    ids = ids[:, :frames]
    ids = F.pad(ids, (0, frames - ids.shape[1]), value=0)
    if lengths is not None:
        ids = ids.masked_fill(torch.arange(frames, device=ids.device)[None, :] >= lengths[:, None], 0)
    return ids


@BACKBONES.register("dit_f5")
class F5DiT(Backbone):
    """F5-TTS DiT (AdaLN-zero blocks, pair RoPE, ConvNeXt-V2 text, conv positions); upstream-identical keys.

    Args:
        dim, depth, heads, dim_head, ff_mult, dropout: transformer size (F5TTS_v1_Base: 1024, 22, 16, 64, 2, 0.1).
        latent_dim: frame channels (upstream `mel_dim`, 100 mels); handed over by the recipe from the codec.
        text_num_embeds: vocabulary size (lines of vocab.txt); the table has one more row (0 = filler).
        text_dim: text feature width (512); conv_layers: ConvNeXt-V2 blocks over the text (4).
        text_mask_padding: zero padding positions around every text block (True in v1; False = F5TTS_Base v0).
        input_dims: {"global": width} to add the optional global input.
        input_kinds: what the recipe binds to each input ({"text": ("frame_ids",)} when the text ids are already
            frame-aligned with 0 as filler, as DiffRhythm's lyrics; F5's own text is ids padded with -1).

    forward(x, cond, conditions, time, drop=None):
        x, cond: [B, T, latent_dim]; conditions: "text" int [B, n] character indices padded with -1
        (or already [B, T]), optional "mask" [B, T] bool valid frames (the objective's, not a condition),
        "global" [B, width] when built with it; time: [B] or scalar;
        drop: per-item [B] bool masks for "audio" (cond -> 0) and "text" (tokens -> filler).
    """

    INPUTS = INPUTS
    # Under bf16 the time, global, text and input embeddings, the final norm and the output projection stay fp32
    # and so does the residual stream between the blocks, as for dit_diffrhythm (docs/f5tts.md, bf16 study).
    FP32_WITH_BF16 = ("time_embed", "global_embed", "text_embed", "input_embed", "norm_out", "proj_out")

    def __init__(self, dim: int = 1024, depth: int = 22, heads: int = 16, dim_head: int = 64, ff_mult: int = 2,
                 dropout: float = 0.1, *, latent_dim: int = 100, text_num_embeds: int = 2545, text_dim: int = 512,
                 conv_layers: int = 4, text_mask_padding: bool = True, input_dims: dict[str, int] | None = None,
                 input_kinds: Mapping[str, tuple[str, ...]] | None = None):
        super().__init__()
        input_dims = dict(input_dims or {})
        unknown = sorted(set(input_dims) - {INPUT_GLOBAL})
        if unknown:
            raise ValueError(f"dit_f5 has no optional input(s) {unknown}; optional: global")
        self.global_dim = input_dims.get(INPUT_GLOBAL)
        self.text_on_frames = OUT_FRAME_IDS in tuple((input_kinds or {}).get("text", ()))
        self.dim, self.depth, self.latent_dim = dim, depth, latent_dim
        self.text_num_embeds, self.text_dim = text_num_embeds, text_dim
        self.text_mask_padding = bool(text_mask_padding)
        self.time_embed = TimestepEmbedding(dim)
        if self.global_dim:
            self.global_embed = nn.Sequential(nn.Linear(self.global_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.text_embed = ConvTextEmbedding(text_num_embeds + 1, text_dim, conv_layers, conv_mult=2,
                                            max_positions=TEXT_MAX_POSITIONS)
        self.input_embed = ConcatInputEmbedding(2 * latent_dim + text_dim, dim)
        self.rotary_embed = RotaryEmbedding(dim_head, style="pairs", persistent=True)
        self.transformer_blocks = nn.ModuleList(
            DiTBlock(dim, heads, dim_head, ff_mult, dropout) for _ in range(depth))
        self.norm_out = AdaLayerNormFinal(dim, dim)
        self.proj_out = nn.Linear(dim, latent_dim)
        self._init_like_upstream()

    def _init_like_upstream(self) -> None:
        # Zero-init the AdaLN modulations and the output projection, as upstream does.
        for block in self.transformer_blocks:
            nn.init.zeros_(block.attn_norm.linear.weight)
            nn.init.zeros_(block.attn_norm.linear.bias)
        for layer in (self.norm_out.linear, self.proj_out) + ((self.global_embed[2],) if self.global_dim else ()):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def inputs(self) -> dict[str, InputSpec]:
        return {k: v for k, v in self.INPUTS.items() if k != INPUT_GLOBAL or self.global_dim}

    def reset_buffers(self) -> None:
        """Recompute the buffers (call after `to_empty` from the meta device)."""
        self.text_embed.reset_buffers()
        self.rotary_embed.reset_buffers()

    # ------------------------------------------------------------------------------------------ text
    def embed_text(self, ids: torch.Tensor, drop: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
        """ids [B, T] (0 = filler) -> [B, T, text_dim]. The padding mask is taken before the drop.

        With a frame mask, positions past an item's valid frames get neither a token (filler, see
        `frame_text`) nor a position embedding. The ConvNeXt blocks still run over all T frames (their
        GRN sees the zeroed padding rows), which is what upstream f5-tts 1.1.22 computes (golden case
        dit_forward_masked); a per-item embedding over each item's own length differs by ~0.1.
        """
        pad = (ids == 0) if self.text_mask_padding else None
        return self.text_embed(ids, drop=drop, valid=valid, pad=pad)

    # --------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, cond: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                time: torch.Tensor, drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        drop_audio, drop_text = drop_masks(drop, DROP_GROUPS, b, x.device)
        if "text" not in conditions:
            raise ValueError("conditions['text'] is required: character indices [B, n] padded with -1")
        mask = conditions.get("mask")
        if mask is not None:
            mask = mask.to(device=x.device, dtype=torch.bool)
            if mask.shape != (b, t):
                raise ValueError(f"conditions['mask'] must be [B, T] = [{b}, {t}], got {tuple(mask.shape)}")
        lengths = None if mask is None else mask.sum(1)

        out_dtype, x = x.dtype, x.to(self.proj_out.weight.dtype)  # a bf16 model may be integrated in fp32
        # bf16 keeps fp32 flow times (8 mantissa bits would move 1000 * t by radians); fp16 embeds fp16 times
        time_dtype = torch.float32 if x.dtype == torch.bfloat16 else x.dtype
        time = torch.as_tensor(time, device=x.device, dtype=time_dtype)
        if time.ndim == 0:
            time = time.repeat(b)
        c = self.time_embed(time)
        if self.global_dim:
            c = c + self.global_embed(conditions[INPUT_GLOBAL].to(c.dtype))
        text = conditions["text"].to(x.device)
        if self.text_on_frames:  # 0 = filler, k = token k: shifted into F5's "-1 = padding" convention
            text = text.long() - 1
        ids = frame_text(text, t, lengths)
        text = self.embed_text(ids, drop_text, mask).to(x.dtype)
        cond = cond.to(x.dtype)
        if drop_audio is not None:
            cond = cond.masked_fill(drop_audio[:, None, None], 0.0)
        h = self.input_embed([x, cond, text], mask)  # the residual stream, in the ends' dtype
        block_dtype = self.transformer_blocks[0].attn_norm.linear.weight.dtype if self.depth else h.dtype
        rope = self.rotary_embed(t, dtype=block_dtype)
        for block in self.transformer_blocks:
            h = block(h, c, rope, mask)
        return self.proj_out(self.norm_out(h, c.to(h.dtype))).to(out_dtype)
