"""DiffRhythm's DiT: Llama blocks over latent frames, conditioned on frame-aligned lyrics, style and time.

State-dict keys equal upstream's (ASLP-lab/DiffRhythm `CFM.state_dict()`) without the `transformer.`
prefix, so published checkpoints load with no key map (see toolkit.models.diffrhythm.checkpoints).

Data flow (docs/reference/diffrhythm.md §3):
  c     = time_embed(t) + start_time_embed(start_time) [+ duration_time_embed(duration)]      [B, 512]
  e     = text_embed(lyrics)                                                                   [B, T, 512]
  h     = input_embed(cat[x, cond, e, style, c])            (style and c broadcast over frames)
  for i, block: h = block(h, rope); if i < depth // 2: h = h + SiLU(Linear(e))                 (text fusion)
  out   = proj_out(norm_out(h, c))                          (AdaLN, scale first)
Attention is bidirectional and unmasked (upstream never masks padding frames either).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..modules.adaln import AdaLayerNormFinal
from ..modules.input_embedding import ConcatInputEmbedding
from ..modules.llama_block import LlamaBlock
from ..modules.rotary import RotaryEmbedding
from ..modules.text_embedding import ConvTextEmbedding
from ..modules.timestep import TimestepEmbedding
from ..protocols import Backbone
from ..registry import BACKBONES
from .drops import drop_masks

COND_DIM = 512  # width of the time / start-time / duration embeddings (hard-wired upstream)
FULL_MAX_FRAMES = 6144  # upstream builds the duration embedding iff max_frames == 6144
DROP_GROUPS = ("audio", "lyrics", "style")


def _per_item(value: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    if value.ndim == 0:
        return value.expand(batch)
    if value.shape != (batch,):
        raise ValueError(f"'{name}' must be a scalar or have shape [{batch}], got {tuple(value.shape)}")
    return value


@BACKBONES.register("dit_diffrhythm")
class DiffRhythmDiT(Backbone):
    """DiffRhythm DiT (Llama blocks, lyrics ConvNeXt, AdaLN out); upstream-identical keys.

    Args:
        dim, depth, ff_mult: width, number of blocks, MLP expansion (hidden = dim * ff_mult).
        latent_dim: codec latent channels (upstream `mel_dim`; 64 for the DiffRhythm VAE).
        text_dim: lyric-feature width; the text-fusion linears read it (upstream requires 512).
        conv_layers: ConvNeXt-V2 blocks over the lyric tokens.
        text_num_embeds: lyric vocabulary size; the table has one extra row (0 = filler).
        max_frames: 2048 (base, 95 s) or 6144 (full, 285 s); clamps the lyric position table.
        style_dim: width of the global style embedding (MuQ-MuLan: 512).
        num_heads: attention heads (upstream hard-wires 32 whatever its config says).
        duration_embed: build the song-duration embedding; None -> max_frames == 6144 as upstream
            (v1.2 full). DiffRhythm v1.0 full (6144 frames, no duration keys) needs False.

    forward(x, cond, conditions, time, drop=None):
        x, cond: [B, T, latent_dim] noisy latent and audio prompt (zeros where generated);
        conditions: "lyrics" int64 [B, T] frame-aligned token ids (0 = filler), "style" [B, style_dim],
            optional "start_time" [B] (fraction of the song before this window; default 0),
            "duration" [B] (end_frame / max_frames; required iff the duration embedding exists);
        time: [B] or a scalar in [0, 1] (broadcast to the batch);
        drop: per-item bool masks [B] for "audio" (cond -> 0), "lyrics" (tokens -> filler 0) and
            "style" (style -> 0); a missing group is not dropped.
    Returns the velocity [B, T, latent_dim].
    """

    def __init__(self, dim: int, depth: int, ff_mult: int = 4, *, latent_dim: int, text_dim: int = 512,
                 conv_layers: int = 4, text_num_embeds: int = 363, max_frames: int = 2048, style_dim: int = 512,
                 num_heads: int = 32, duration_embed: bool | None = None):
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"dim {dim} must be a multiple of num_heads {num_heads} with an even head size")
        self.dim, self.depth, self.latent_dim = dim, depth, latent_dim
        self.text_dim, self.style_dim, self.max_frames = text_dim, style_dim, max_frames
        self.num_heads = num_heads
        self.has_duration = (max_frames == FULL_MAX_FRAMES) if duration_embed is None else bool(duration_embed)

        self.time_embed = TimestepEmbedding(COND_DIM)
        self.start_time_embed = TimestepEmbedding(COND_DIM)
        if self.has_duration:
            self.duration_time_embed = TimestepEmbedding(COND_DIM)
        self.text_embed = ConvTextEmbedding(text_num_embeds + 1, text_dim, conv_layers, conv_mult=2,
                                            max_positions=max_frames)
        self.input_embed = ConcatInputEmbedding(2 * latent_dim + text_dim + style_dim + COND_DIM, dim)
        self.rotary = RotaryEmbedding(dim // num_heads, style="half")
        self.transformer_blocks = nn.ModuleList(
            LlamaBlock(dim, num_heads, dim * ff_mult, eps=1e-6, rotary_style="half") for _ in range(depth))
        self.text_fusion_linears = nn.ModuleList(
            nn.Sequential(nn.Linear(text_dim, dim), nn.SiLU()) for _ in range(depth // 2))
        self.norm_out = AdaLayerNormFinal(dim, COND_DIM)
        self.proj_out = nn.Linear(dim, latent_dim)
        self._init_like_upstream()

    def _init_like_upstream(self) -> None:
        # Zero-init where upstream does, so a fresh model starts from the same function family.
        for fusion in self.text_fusion_linears:
            nn.init.zeros_(fusion[0].weight)
            nn.init.zeros_(fusion[0].bias)
        nn.init.zeros_(self.norm_out.linear.weight)
        nn.init.zeros_(self.norm_out.linear.bias)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (call after `to_empty` from the meta device)."""
        self.text_embed.reset_buffers()
        self.rotary.reset_buffers()

    def condition_vector(self, time: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                         batch: int) -> torch.Tensor:
        """c [B, 512] = time + start-time (+ duration) embeddings."""
        time = _per_item(time, batch, "time")
        start = conditions.get("start_time")
        start = torch.zeros_like(time) if start is None else _per_item(start.to(time.dtype), batch, "start_time")
        c = self.time_embed(time) + self.start_time_embed(start)
        if self.has_duration:
            duration = conditions.get("duration")
            if duration is None:
                raise ValueError("this DiT has a duration embedding (max_frames 6144): pass "
                                 "conditions['duration'] = generated frames / max_frames, shape [B]")
            c = c + self.duration_time_embed(_per_item(duration.to(time.dtype), batch, "duration"))
        return c

    def forward(self, x: torch.Tensor, cond: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                time: torch.Tensor, drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        drop_audio, drop_lyrics, drop_style = drop_masks(drop, DROP_GROUPS, b, x.device)

        lyrics = conditions["lyrics"]
        if lyrics.shape != (b, t):
            raise ValueError(f"conditions['lyrics'] must be frame-aligned [B, T] = [{b}, {t}], "
                             f"got {tuple(lyrics.shape)}")
        style = conditions["style"].to(x.dtype)
        cond = cond.to(x.dtype)
        if drop_style is not None:
            style = style.masked_fill(drop_style[:, None], 0.0)
        if drop_audio is not None:
            cond = cond.masked_fill(drop_audio[:, None, None], 0.0)

        time = torch.as_tensor(time, device=x.device, dtype=x.dtype)  # an fp16 model embeds fp16 times
        c = self.condition_vector(time, conditions, b)
        text = self.text_embed(lyrics, drop=drop_lyrics)
        h = self.input_embed([x, cond, text, style[:, None, :].expand(b, t, -1), c[:, None, :].expand(b, t, -1)])

        rope = self.rotary(t, dtype=h.dtype)
        fused = len(self.text_fusion_linears)
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, rope)
            if i < fused:
                h = h + self.text_fusion_linears[i](text)
        return self.proj_out(self.norm_out(h, c))
