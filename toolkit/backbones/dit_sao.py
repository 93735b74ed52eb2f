"""Stable Audio Open's DiT (stable-audio-tools `DiffusionTransformer`, continuous_transformer), registered `dit_sao`.

State-dict keys equal upstream's `DiffusionTransformer` keys, i.e. the published checkpoints' `model.model.*`
with that prefix removed (toolkit.backbones.sao_checkpoint loads them strictly).

Data flow (golden/sao/README.txt), in upstream's channels-first layout [B, C, T]:
  g  = to_timestep_embed(cos/sin learned Fourier features of t) (+ to_global_embed(global))      [B, E]
  p  = [to_prepend_embed(prepend) (P' tokens), g]                                                [B, P'+1, E]
  c  = to_cond_embed(cross_attn)   (context of width E, or cond_token_dim when not projected)   [B, N, C]
  x  = cat[x, input_concat (nearest-resized to T)] -> x + preprocess_conv(x) -> [B, T, C_in]
  h  = ContinuousTransformer(x, prepend_embeds=p, context=c)[:, P'+1:]  -> out + postprocess_conv(out)
Nothing is masked: upstream discards the cross-attention mask and never passes the prepend mask on.

Time: `time` is upstream's own t in [0, 1], t = 1 the pure-noise end, the reverse of the toolkit's CFM flow
time. For the v objective sigma = sin(t pi/2), alpha = cos(t pi/2); for rectified flow x_t = (1 - t) x + t noise.
The objectives and samplers (toolkit.objectives.v_diffusion / rectified_flow) hand it this t.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..objectives.guidance import guided_forward
from ..protocols import INPUT_CONCAT, INPUT_CROSS_ATTN, INPUT_GLOBAL, INPUT_PREPEND, Backbone, InputSpec, generic_input
from ..registry import BACKBONES
from .dit_sao_transformer import QK_NORMS, ContinuousTransformer
from .drops import drop_masks

OBJECTIVES = ("v", "rectified_flow", "rf_denoiser")
TIMESTEP_FEATURES = 256
# upstream DiffusionTransformer options this implementation covers only at their Stable Audio Open values
UPSTREAM_FIXED = {"transformer_type": "continuous_transformer", "patch_size": 1, "global_cond_type": "prepend",
                  "timestep_cond_type": "global"}


class FourierFeatures(nn.Module):
    """Learned Gaussian Fourier features cat(cos f, sin f), f = 2 pi t W^T (COS first); key `weight` [out/2, in]."""

    def __init__(self, in_features: int = 1, out_features: int = TIMESTEP_FEATURES, std: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


# Every input this DiT can have; which it has, and their widths, come from its configuration (as upstream's).
INPUTS = {
    "cross_attn": generic_input(INPUT_CROSS_ATTN, optional=False, mask="cross_attn_mask",
                                doc="tokens attended by every block (mask ignored, as upstream)"),
    "global": generic_input(INPUT_GLOBAL, optional=False,
                            doc="added to the time embedding, prepended as the last extra token"),
    "prepend": generic_input(INPUT_PREPEND, optional=False, mask="prepend_mask",
                             doc="tokens before the global token (mask ignored, as upstream)"),
    "input_concat": generic_input(INPUT_CONCAT, optional=False,
                                  doc="frame features concatenated to the latent channels"),
}


def _mlp(dim_in: int, dim_out: int, bias: bool) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim_out, bias=bias), nn.SiLU(), nn.Linear(dim_out, dim_out, bias=bias))


@BACKBONES.register("dit_sao")
class SAODiT(Backbone):
    """Stable Audio Open DiT: cross-attention, prepended global/time token, input concat; upstream-identical keys.

    Defaults are Stable Audio Open 1.0's released DiT (1056.8 M parameters); Stable Audio Open Small is
    embed_dim 1024, depth 16, num_heads 8, global_cond_dim 768, project_cond_tokens true, qk_norm "ln"
    (toolkit.backbones.sao_checkpoint.RELEASED holds both).

    Args:
        embed_dim, depth, num_heads: transformer width, blocks, heads (dim_heads = embed_dim // num_heads >= 32).
        latent_dim: upstream `io_channels` (the codec's latent width, handed over by the recipe).
        cond_token_dim: width of the cross-attention tokens (0: no cross-attention).
        project_cond_tokens: project the tokens to embed_dim (else the context keeps cond_token_dim).
        global_cond_dim: width of the global vector added to the time embedding (0: none).
        project_global_cond: project it to embed_dim (else global_cond_dim must equal embed_dim).
        prepend_cond_dim: width of tokens prepended before the global token (0: none).
        input_concat_dim: channels concatenated to the latent frame-wise (0: none).
        qk_norm: None or "ln" (per-head LayerNorm on q and k).
        ff_mult: feed-forward expansion (4).
        diffusion_objective: "v", "rectified_flow" or "rf_denoiser": only decides what sigma the guidance
            interval of `cfg_forward` compares (sin(t pi/2) or t).
        max_frames: accepted for the shared recipe interface (unused: positions are rotary).

    forward(x, cond, conditions, time, drop=None):
        x: [B, T, latent_dim]; cond: unused (Stable Audio Open has no audio-prompt input; an inpainting
        prompt arrives through `input_concat`); time: [B] or scalar, upstream's t (see the module docstring);
        conditions: "cross_attn" [B, N, cond_token_dim] (+ "cross_attn_mask" [B, N], accepted and ignored as
        upstream does), "global" [B, global_cond_dim], "prepend" [B, P, prepend_cond_dim] (+ "prepend_mask",
        ignored), "input_concat" [B, T', input_concat_dim] (frames; nearest-resized to T when T' != T);
        every input is optional except input_concat when configured;
        drop: per-item [B] bool masks by input name: a dropped input becomes zeros (for cross_attn and
        prepend this is upstream's null embedding in guidance and training dropout; upstream never drops
        global or input_concat, zeros is the toolkit's choice); "audio" is accepted and has no effect.
    """

    INPUTS = INPUTS

    def __init__(self, embed_dim: int = 1536, depth: int = 24, num_heads: int = 24, *, latent_dim: int = 64,
                 cond_token_dim: int = 768, project_cond_tokens: bool = False, global_cond_dim: int = 1536,
                 project_global_cond: bool = True, prepend_cond_dim: int = 0, input_concat_dim: int = 0,
                 qk_norm: str | None = None, ff_mult: int = 4, diffusion_objective: str = "v",
                 max_frames: int | None = None):
        super().__init__()
        if diffusion_objective not in OBJECTIVES:
            raise ValueError(f"diffusion_objective must be one of {OBJECTIVES}, got {diffusion_objective!r}")
        if qk_norm not in QK_NORMS:
            raise ValueError(f"qk_norm must be one of {QK_NORMS}, got {qk_norm!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
        self.embed_dim, self.depth, self.num_heads = embed_dim, depth, num_heads
        self.latent_dim = latent_dim
        self.cond_token_dim, self.global_cond_dim = cond_token_dim, global_cond_dim
        self.prepend_cond_dim, self.input_concat_dim = prepend_cond_dim, input_concat_dim
        self.diffusion_objective = diffusion_objective

        self.timestep_features = FourierFeatures(1, TIMESTEP_FEATURES)
        self.to_timestep_embed = _mlp(TIMESTEP_FEATURES, embed_dim, bias=True)
        context_dim = None
        if cond_token_dim > 0:
            context_dim = embed_dim if project_cond_tokens else cond_token_dim
            self.to_cond_embed = nn.Sequential(nn.Linear(cond_token_dim, context_dim, bias=False), nn.SiLU(),
                                               nn.Linear(context_dim, context_dim, bias=False))
        if global_cond_dim > 0:
            global_dim = embed_dim if project_global_cond else global_cond_dim
            if global_dim != embed_dim:
                raise ValueError(f"project_global_cond=False needs global_cond_dim == embed_dim ({embed_dim}): the "
                                 f"global vector is added to the time embedding, got {global_cond_dim}")
            self.to_global_embed = nn.Sequential(nn.Linear(global_cond_dim, global_dim, bias=False), nn.SiLU(),
                                                 nn.Linear(global_dim, global_dim, bias=False))
        if prepend_cond_dim > 0:
            self.to_prepend_embed = nn.Sequential(nn.Linear(prepend_cond_dim, embed_dim, bias=False), nn.SiLU(),
                                                  nn.Linear(embed_dim, embed_dim, bias=False))
        dim_in = latent_dim + input_concat_dim
        self.transformer = ContinuousTransformer(embed_dim, depth, dim_in, latent_dim, embed_dim // num_heads,
                                                 context_dim=context_dim, qk_norm=qk_norm, ff_mult=ff_mult)
        self.preprocess_conv = nn.Conv1d(dim_in, dim_in, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(latent_dim, latent_dim, 1, bias=False)
        nn.init.zeros_(self.preprocess_conv.weight)  # upstream: both residual convs start as identity
        nn.init.zeros_(self.postprocess_conv.weight)

    # ---------------------------------------------------------------------------------------------- config
    @classmethod
    def upstream_kwargs(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """stable-audio-tools' DiT config (`model.diffusion.config`, plus `diffusion_objective`) -> our kwargs."""
        config = dict(config)
        for key, value in UPSTREAM_FIXED.items():
            given = config.pop(key, value)
            if given != value:
                raise ValueError(f"dit_sao implements {key}={value!r} only (Stable Audio Open's), got {given!r}")
        attn = dict(config.pop("attn_kwargs", None) or {})
        qk_norm = attn.pop("qk_norm", None)
        if attn:
            raise ValueError(f"unsupported attn_kwargs {sorted(attn)} (dit_sao knows qk_norm)")
        kwargs = {"embed_dim": config.pop("embed_dim", 768), "depth": config.pop("depth", 12),
                  "num_heads": config.pop("num_heads", 8), "latent_dim": config.pop("io_channels", 32),
                  "cond_token_dim": config.pop("cond_token_dim", 0),
                  "project_cond_tokens": config.pop("project_cond_tokens", True),
                  "global_cond_dim": config.pop("global_cond_dim", 0),
                  "project_global_cond": config.pop("project_global_cond", True),
                  "prepend_cond_dim": config.pop("prepend_cond_dim", 0),
                  "input_concat_dim": config.pop("input_concat_dim", 0), "qk_norm": qk_norm,
                  "diffusion_objective": config.pop("diffusion_objective", "v")}
        if config:
            raise ValueError(f"unsupported DiffusionTransformer options {sorted(config)}")
        return kwargs

    def inputs(self) -> Mapping[str, InputSpec]:
        """The inputs this configuration has (upstream's config decides, as cond_token_dim etc. do there)."""
        widths = {"cross_attn": self.cond_token_dim, "global": self.global_cond_dim,
                  "prepend": self.prepend_cond_dim, "input_concat": self.input_concat_dim}
        return {name: replace(spec, dim=widths[name]) for name, spec in self.INPUTS.items() if widths[name] > 0}

    # --------------------------------------------------------------------------------------------- forward
    def forward_channels_first(self, x: torch.Tensor, t: torch.Tensor, cross_attn_cond: torch.Tensor | None = None,
                               global_embed: torch.Tensor | None = None, prepend_cond: torch.Tensor | None = None,
                               input_concat_cond: torch.Tensor | None = None) -> torch.Tensor:
        """Upstream's `DiffusionTransformer._forward`: x [B, io, T], t [B] -> [B, io, T] (inputs in the model dtype)."""
        context = self.to_cond_embed(cross_attn_cond) if cross_attn_cond is not None else None
        global_embed = self.to_global_embed(global_embed) if global_embed is not None else None
        prepend = self.to_prepend_embed(prepend_cond) if prepend_cond is not None else None
        if input_concat_cond is not None:
            if input_concat_cond.shape[2] != x.shape[2]:
                input_concat_cond = F.interpolate(input_concat_cond, (x.shape[2],), mode="nearest")
            x = torch.cat([x, input_concat_cond], dim=1)
        timestep_embed = self.to_timestep_embed(self.timestep_features(t[:, None]))
        token = timestep_embed if global_embed is None else global_embed + timestep_embed
        token = token.unsqueeze(1)
        prepend = token if prepend is None else torch.cat([prepend, token], dim=1)
        x = self.preprocess_conv(x) + x
        out = self.transformer(x.transpose(1, 2), prepend_embeds=prepend, context=context)
        out = out.transpose(1, 2)[:, :, prepend.shape[1]:]
        return self.postprocess_conv(out) + out

    def _param_dtype(self) -> torch.dtype:
        return self.to_timestep_embed[0].weight.dtype

    def _input(self, conditions: Mapping[str, torch.Tensor], name: str, drop: torch.Tensor | None,
               batch: int, dtype: torch.dtype) -> torch.Tensor | None:
        value = conditions.get(name)
        if value is None:
            return None
        value = value.to(dtype)
        if value.shape[0] == 1 and batch > 1:
            value = value.expand(batch, *value.shape[1:])
        if value.shape[0] != batch:
            raise ValueError(f"conditions['{name}'] has batch {value.shape[0]}, the latents {batch}")
        if drop is not None:
            value = torch.where(drop.view(-1, *([1] * (value.dim() - 1))), torch.zeros_like(value), value)
        return value

    def _check_conditions(self, conditions: Mapping[str, torch.Tensor]) -> dict[str, InputSpec]:
        specs = dict(self.inputs())
        known = set(specs) | {s.mask for s in specs.values() if s.mask}
        unknown = sorted(set(conditions) - known)
        if unknown:
            raise ValueError(f"dit_sao got conditions {unknown} it has no input for; its inputs are {sorted(known)} "
                             "(cond_token_dim / global_cond_dim / prepend_cond_dim / input_concat_dim enable them)")
        for name, spec in specs.items():
            value = conditions.get(name)
            if value is not None and value.shape[-1] != spec.dim:
                raise ValueError(f"conditions['{name}'] has width {value.shape[-1]}, dit_sao expects {spec.dim}")
        if "input_concat" in specs and conditions.get("input_concat") is None:
            raise ValueError(f"conditions['input_concat'] [B, T, {self.input_concat_dim}] is required "
                             "(input_concat_dim > 0)")
        return specs

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None, conditions: Mapping[str, torch.Tensor],
                time: torch.Tensor, drop: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        b = x.shape[0]
        specs = self._check_conditions(conditions)
        groups = ("audio", *specs)
        drops = dict(zip(groups, drop_masks(drop, groups, b, x.device), strict=True))
        dtype = self._param_dtype()
        time = torch.as_tensor(time, device=x.device).to(dtype)
        if time.ndim == 0:
            time = time.repeat(b)
        inputs = {name: self._input(conditions, name, drops[name], b, dtype) for name in specs}
        concat = inputs.get("input_concat")
        out = self.forward_channels_first(
            x.to(dtype).transpose(1, 2), time, cross_attn_cond=inputs.get("cross_attn"),
            global_embed=inputs.get("global"), prepend_cond=inputs.get("prepend"),
            input_concat_cond=None if concat is None else concat.transpose(1, 2))
        return out.transpose(1, 2)

    # ------------------------------------------------------------------------------------------- guidance
    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """The noise level the guidance interval compares: sin(t pi/2) for "v", t for rectified flow."""
        return torch.sin(t * math.pi / 2) if self.diffusion_objective == "v" else t

    def cfg_forward(self, x: torch.Tensor, conditions: Mapping[str, torch.Tensor], time: torch.Tensor, *,
                    cfg_scale: float, negative_conditions: Mapping[str, torch.Tensor] | None = None,
                    scale_phi: float = 0.0, cfg_interval: tuple[float, float] = (0.0, 1.0),
                    return_batch: bool = False):
        """Upstream `DiffusionTransformer.forward` with guidance, in the toolkit layout.

        One batch [conditional; unconditional]: the unconditional half drops cross_attn and prepend to zeros
        (or takes negative_conditions["cross_attn"] with positions where "cross_attn_mask" is False zeroed);
        global and input_concat are kept. out = u + (c - u) * cfg_scale, then with scale_phi != 0 the rescale
        phi * out * std(c) / std(out) + (1 - phi) * out (std over channels). Guidance is skipped when cfg_scale is
        1, when there is no cross_attn / prepend input, or when item 0's sigma lies outside cfg_interval.
        The samplers call the same `guided_forward`.
        """
        return guided_forward(self, x, None, conditions, time, cfg_scale=cfg_scale,
                              uncond_drop=("cross_attn", "prepend"), negative_conditions=negative_conditions,
                              scale_phi=scale_phi, interval=cfg_interval, sigma_of_time=self.sigma,
                              return_batch=return_batch)
