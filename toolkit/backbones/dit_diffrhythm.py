"""DiffRhythm's DiT: Llama blocks over latent frames, conditioned on frame-aligned lyrics, style and time.

State-dict keys equal upstream's (ASLP-lab/DiffRhythm `CFM.state_dict()`) without the `transformer.`
prefix, so published checkpoints load with no key map (see toolkit.models.diffrhythm.checkpoints).

Data flow (docs/reference/diffrhythm.md §3):
  c     = time_embed(t) + start_time_embed(start_time) [+ duration_time_embed(duration)]
          [+ global_embed(global)]                                                             [B, 512]
  e     = text_embed(lyrics)                                                                   [B, T, 512]
  h     = input_embed(cat[x, cond, e, style, c [, input_concat]])  (style and c broadcast over frames)
  for i, block: h = block(h, rope); if i < depth // 2: h = h + SiLU(Linear(e))                 (text fusion)
  out   = proj_out(norm_out(h, c))                          (AdaLN, scale first)
Attention is bidirectional and unmasked (upstream never masks padding frames either).
`global` and `input_concat` are the generic inputs a recipe may add by configuration; they exist (and add
parameters) only when `input_dims` sizes them, so the published checkpoints keep their exact keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import nn

from ..modules.adaln import AdaLayerNormFinal
from ..modules.input_embedding import ConcatInputEmbedding
from ..modules.llama_block import LlamaBlock
from ..modules.rotary import RotaryEmbedding
from ..modules.text_embedding import ConvTextEmbedding
from ..modules.timestep import TimestepEmbedding
from ..protocols import (
    INPUT_CONCAT,
    INPUT_GLOBAL,
    OUT_FRAME_IDS,
    OUT_SCALAR,
    OUT_VECTOR,
    Backbone,
    InputSpec,
    generic_input,
)
from ..registry import BACKBONES
from .drops import drop_masks

COND_DIM = 512  # width of the time / start-time / duration embeddings (hard-wired upstream)
FULL_MAX_FRAMES = 6144  # upstream builds the duration embedding iff max_frames == 6144
DROP_GROUPS = ("audio", "lyrics", "style")  # the inputs that drop inside (the generic ones are dropped by the router)
INPUTS = {
    "lyrics": InputSpec("lyric_tokens", accepts=(OUT_FRAME_IDS,), required=True,
                        doc="frame-aligned phoneme ids -> ConvNeXt text embedding, input projection and the "
                            "first half-blocks' fusion adds"),
    "style": InputSpec("global_concat", accepts=(OUT_VECTOR,), required=True,
                       doc="a global vector broadcast over the frames into the input projection"),
    "start_time": InputSpec("time_scalar", accepts=(OUT_SCALAR,), dim=1,
                            doc="fraction of the song before the window, embedded and added to the time embedding"),
    "duration": InputSpec("time_scalar", accepts=(OUT_SCALAR,), dim=1,
                          doc="generated frames / max_frames (only with the duration embedding: v1.2 full)"),
    INPUT_GLOBAL: generic_input(INPUT_GLOBAL, doc="vectors added to the time embedding through an MLP"),
    INPUT_CONCAT: generic_input(INPUT_CONCAT, doc="frame-aligned features concatenated into the input projection"),
}


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
        input_dims: widths of the optional generic inputs bound by a recipe ("global", "input_concat").

    forward(x, cond, conditions, time, drop=None):
        x, cond: [B, T, latent_dim] noisy latent and audio prompt (zeros where generated);
        conditions: "lyrics" int64 [B, T] frame-aligned token ids (0 = filler), "style" [B, style_dim],
            optional "start_time" [B] (fraction of the song before this window; default 0),
            "duration" [B] (end_frame / max_frames; required iff the duration embedding exists),
            "global" [B, input_dims["global"]], "input_concat" [B, T, input_dims["input_concat"]] when built;
        time: [B] or a scalar in [0, 1] (broadcast to the batch);
        drop: per-item bool masks [B] for "audio" (cond -> 0), "lyrics" (tokens -> filler 0) and
            "style" (style -> 0); a missing group is not dropped.
    Returns the velocity [B, T, latent_dim].
    """

    INPUTS = INPUTS
    # Under bf16 the time, lyric and input embeddings, the final norm and the output projection stay fp32
    # (<1 % of the FLOPs; the lyric path runs once per song), and so does the residual stream between the
    # blocks: the song-level error then equals fp32's (docs/dit_cfm.md, error table; the blocks alone in bf16
    # added 24 % on the released-layout model).
    FP32_WITH_BF16 = ("time_embed", "start_time_embed", "duration_time_embed", "global_embed", "text_embed",
                      "text_fusion_linears", "input_embed", "norm_out", "proj_out")

    def __init__(self, dim: int, depth: int, ff_mult: int = 4, *, latent_dim: int, text_dim: int = 512,
                 conv_layers: int = 4, text_num_embeds: int = 363, max_frames: int = 2048, style_dim: int = 512,
                 num_heads: int = 32, duration_embed: bool | None = None, input_dims: dict[str, int] | None = None):
        super().__init__()
        input_dims = dict(input_dims or {})
        unknown = sorted(set(input_dims) - {INPUT_GLOBAL, INPUT_CONCAT})
        if unknown:
            raise ValueError(f"dit_diffrhythm has no optional input(s) {unknown}; optional: global, input_concat")
        self.global_dim, self.concat_dim = input_dims.get(INPUT_GLOBAL), input_dims.get(INPUT_CONCAT, 0)
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
        if self.global_dim:
            self.global_embed = nn.Sequential(nn.Linear(self.global_dim, COND_DIM), nn.SiLU(),
                                              nn.Linear(COND_DIM, COND_DIM))
        self.input_embed = ConcatInputEmbedding(2 * latent_dim + text_dim + style_dim + COND_DIM + self.concat_dim,
                                                dim)
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
        if self.global_dim:  # a new global condition starts as a no-op, so it can join a trained model
            nn.init.zeros_(self.global_embed[2].weight)
            nn.init.zeros_(self.global_embed[2].bias)

    def inputs(self) -> dict[str, InputSpec]:
        skip = {INPUT_GLOBAL} if not self.global_dim else set()
        skip |= {INPUT_CONCAT} if not self.concat_dim else set()
        out = {k: v for k, v in self.INPUTS.items() if k not in skip and k != "duration"}
        if self.has_duration:  # the duration embedding cannot run without its value
            out["duration"] = replace(self.INPUTS["duration"], required=True)
        return out

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
        if self.global_dim:
            c = c + self.global_embed(conditions[INPUT_GLOBAL].to(c.dtype))
        return c

    def forward(self, x: torch.Tensor, cond: torch.Tensor, conditions: Mapping[str, torch.Tensor],
                time: torch.Tensor, drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        drop_audio, drop_lyrics, drop_style = drop_masks(drop, DROP_GROUPS, b, x.device)
        out_dtype, x = x.dtype, x.to(self.proj_out.weight.dtype)  # a bf16 model may be integrated in fp32

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

        # an fp16 model embeds fp16 times, as upstream; bf16 keeps fp32 times (rounding t to bf16's 8-bit
        # mantissa alone moved the released-size output by ~7 %, docs/performance.md)
        time_dtype = torch.float32 if x.dtype == torch.bfloat16 else x.dtype
        time = torch.as_tensor(time, device=x.device, dtype=time_dtype)
        c = self.condition_vector(time, conditions, b)
        text, fusions = self.lyric_features(lyrics, drop_lyrics)
        parts = [x, cond, text, style[:, None, :].expand(b, t, -1), c[:, None, :].expand(b, t, -1)]
        if self.concat_dim:
            parts.append(conditions[INPUT_CONCAT].to(x.dtype))
        h = self.input_embed(parts)  # the residual stream, in the ends' dtype (fp32 for a bf16 model)

        block_dtype = self.transformer_blocks[0].input_layernorm.weight.dtype if self.depth else h.dtype
        rope = self.rotary(t, dtype=block_dtype)
        for i, block in enumerate(self.transformer_blocks):
            h = block(h, rope)
            if i < len(fusions):
                h = h + fusions[i]
        return self.proj_out(self.norm_out(h, c.to(h.dtype))).to(out_dtype)

    def lyric_features(self, lyrics: torch.Tensor, drop: torch.Tensor | None) -> tuple[torch.Tensor, list]:
        """The lyric embedding and the fusion adds of the first half-blocks: they depend neither on the flow
        time nor on x, so at inference they are computed once per song and reused by every ODE step (the
        sampler passes the same lyric tensor each time); recomputed whenever the tokens, the drop mask or
        the weights change, and never cached while gradients are tracked."""
        def compute() -> tuple[torch.Tensor, list]:
            text = self.text_embed(lyrics, drop=drop)
            return text, [fusion(text) for fusion in self.text_fusion_linears]

        if torch.is_grad_enabled() or self.training:
            self._lyric_cache = None
            return compute()
        params = [*self.text_embed.parameters(), *self.text_fusion_linears.parameters()]
        version = None if lyrics.is_inference() else lyrics._version  # inference tensors keep no version counter
        key = (version, None if drop is None else tuple(drop.tolist()),
               tuple(p._version for p in params), tuple(p.data_ptr() for p in params))
        cached = getattr(self, "_lyric_cache", None)
        if cached is None or cached[0] is not lyrics or cached[1] != key:  # the cache holds `lyrics`: no reuse of
            cached = (lyrics, key, *compute())                            # its memory by another tensor
            self._lyric_cache = cached
        return cached[2], cached[3]
