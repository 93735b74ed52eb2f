"""Samplers of v-objective models (Stable Audio Open 1.0), as stable-audio-tools runs them through k-diffusion 0.1.1.

Written here rather than imported: k-diffusion's package import pulls in clip, clean-fid, kornia, scipy and
torchdiffeq, and only these few functions are needed; the parity tests pin them (golden/sao sample_k_*).

* v -> denoiser (k-diffusion VDenoiser, sigma_data 1): D(x, s) = v(x c_in, t) c_out + x c_skip with
  c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1), c_in = 1/sqrt(s^2+1), t = atan(s) 2/pi (sigma = tan(t pi/2)).
* sigmas: polyexponential exp(ramp^rho (ln smax - ln smin) + ln smin), ramp = linspace(1, 0, steps), then 0:
  `steps` model calls; x starts at noise * sigma_max (plus the init latents for a variation).
* DPM-Solver++(2M) and DPM-Solver++(3M) SDE (eta 1, s_noise 1); the last step returns the denoised estimate.
  The SDE's noise is a fresh N(0, 1) draw per non-final step (upstream uses torchsde's Brownian tree, whose
  increments over these disjoint intervals have the same distribution; its exact values need torchsde).
* v-DDIM (stable-audio-tools `sample`, eta 0): t = linspace(min(sigma_max, 1), 0, steps + 1)[:-1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from ..protocols import Backbone
from ..registry import SAMPLERS
from .guidance import Callback, ConfiguredSampler, GuidedModel, Model, batch_conditions, check_whole, sampler_options
from .noise_streams import initial_noise, step_noise_fn

METHODS = ("dpmpp-3m-sde", "dpmpp-2m", "v-ddim")


def polyexponential_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0,
                           device: torch.device | str = "cpu") -> torch.Tensor:
    """[steps + 1] noise levels from sigma_max down to sigma_min, then 0 (k-diffusion get_sigmas_polyexponential)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ramp = torch.linspace(1, 0, steps, device=device) ** rho
    sigmas = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def v_denoiser(model: Model) -> Model:
    """A v-prediction model(x, t) -> a denoiser D(x, sigma [B]) (k-diffusion VDenoiser, sigma_data 1)."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, *([1] * (x.dim() - 1)))
        c_skip = 1.0 / (s ** 2 + 1.0)
        c_out = -s * 1.0 / (s ** 2 + 1.0) ** 0.5
        c_in = 1 / (s ** 2 + 1.0) ** 0.5
        return model(x * c_in, sigma.atan() / math.pi * 2) * c_out + x * c_skip

    return denoise


def dpmpp_2m(denoise: Model, x: torch.Tensor, sigmas: torch.Tensor, callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) over `sigmas` (k-diffusion sample_dpmpp_2m)."""
    ones = x.new_ones([x.shape[0]])
    old = None
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * ones)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised
        else:
            r = (t - (-sigmas[i - 1].log())) / h
            mixed = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * mixed
        old = denoised
    return x


def dpmpp_3m_sde(denoise: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Callable[[int], torch.Tensor],
                 eta: float = 1.0, s_noise: float = 1.0, callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(3M) SDE (k-diffusion sample_dpmpp_3m_sde); noise(i) -> N(0, 1) like x for step i."""
    ones = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = h_1 = h_2 = h = None
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * ones)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                d = (denoised - denoised_1) / (h_1 / h)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = x + noise(i) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def v_ddim(model: Model, x: torch.Tensor, steps: int, sigma_max: float = 1.0,
           callback: Callback = None) -> torch.Tensor:
    """Deterministic DDIM on v predictions (stable-audio-tools `sample`, eta 0); returns the last clean estimate."""
    ones = x.new_ones([x.shape[0]])
    t = torch.linspace(sigma_max, 0, steps + 1)[:-1].to(x.device)
    alphas, sigmas = torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
    pred = x
    for i in range(steps):
        v = model(x, ones * t[i])
        pred = x * alphas[i] - v * sigmas[i]
        eps = x * sigmas[i] + v * alphas[i]
        if i < steps - 1:
            # eta 0: no fresh noise; upstream's adjusted sigma is sqrt(sigma_{i+1}^2 - 0), kept for its rounding
            x = pred * alphas[i + 1] + eps * (sigmas[i + 1] ** 2).sqrt()
        if callback is not None:
            callback({"x": x, "i": i, "t": t[i], "sigma": sigmas[i], "denoised": pred})
    return pred


@SAMPLERS.register("v_diffusion")
class VDiffusionSampler(ConfiguredSampler):
    """v-objective sampling as stable-audio-tools does it: DPM++ 3M SDE / 2M (k-diffusion sigmas) or v-DDIM.

    Args (all overridable per call): method ("dpmpp-3m-sde", "dpmpp-2m", "v-ddim"); steps (model calls);
    sigma_min, sigma_max, rho (polyexponential schedule; Stable Audio Open 1.0's model card: 0.3, 500, 1);
    cfg_scale (7 on the model card; 1 disables guidance); scale_phi (guidance rescale, 0 = off);
    cfg_interval ((lo, hi) of sigma = sin(t pi/2) where guidance applies, None = always);
    uncond_drop: inputs dropped in the unconditional half (cross_attn, prepend, as upstream);
    eta, s_noise: of the SDE method.
    sample(backbone, noise, cond, conditions, *, negative_conditions=None, init=None, shape=None, seed=None,
    step_noise=None, callback=None, trace=None, **overrides): noise [B, T, D] N(0, 1) (None: drawn per item
    from seed + i); cond is unused by dit_sao (pass None); init: latents of a variation; step_noise: the SDE's
    per-step N(0, 1) draws [steps - 1, B, T, D] or a callable i -> tensor; callback(dict) per step with
    x (before the step; after it for v-ddim), i, sigma, denoised; trace: a list receiving every model call.
    """

    def __init__(self, method: str = "dpmpp-3m-sde", steps: int = 100, sigma_min: float = 0.3,
                 sigma_max: float = 500.0, rho: float = 1.0, cfg_scale: float = 7.0, scale_phi: float = 0.0,
                 cfg_interval: tuple[float, float] | None = None,
                 uncond_drop: tuple[str, ...] | list[str] = ("cross_attn", "prepend"), eta: float = 1.0,
                 s_noise: float = 1.0):
        self.defaults = dict(method=method, steps=steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho,
                             cfg_scale=cfg_scale, scale_phi=scale_phi, cfg_interval=cfg_interval,
                             uncond_drop=tuple(uncond_drop), eta=eta, s_noise=s_noise)
        self._check(method)

    @staticmethod
    def _check(method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown v-diffusion sampling method {method!r}; choose one of {METHODS}")

    @torch.no_grad()
    def sample(self, backbone: Backbone, noise: torch.Tensor | None, cond: torch.Tensor | None,
               conditions: Mapping[str, torch.Tensor], *, negative_conditions: Mapping[str, torch.Tensor] | None = None,
               init: torch.Tensor | None = None, shape: tuple[int, int, int] | None = None, seed: int | None = None,
               step_noise=None, callback: Callback = None, trace: list | None = None,
               mask: torch.Tensor | None = None, **overrides) -> torch.Tensor:
        check_whole(mask, "v_diffusion")
        o = sampler_options("v_diffusion", self.defaults, overrides)
        self._check(o["method"])
        x, stream = initial_noise(noise, cond, shape, seed)
        model = GuidedModel(backbone, batch_conditions(conditions, x.shape[0]), cfg_scale=o["cfg_scale"],
                            uncond_drop=o["uncond_drop"], negative_conditions=negative_conditions,
                            scale_phi=o["scale_phi"], interval=o["cfg_interval"],
                            sigma_of_time=lambda t: torch.sin(t * math.pi / 2), trace=trace)
        if o["method"] == "v-ddim":
            sigma_max = min(o["sigma_max"], 1.0)
            if init is not None:
                angle = torch.tensor(sigma_max) * math.pi / 2
                x = init.to(x) * torch.cos(angle) + x * torch.sin(angle)
            return v_ddim(model, x, o["steps"], sigma_max, callback)
        sigmas = polyexponential_sigmas(o["steps"], o["sigma_min"], o["sigma_max"], o["rho"], device=x.device)
        x = x * sigmas[0]
        if init is not None:
            x = init.to(x) + x
        denoise = v_denoiser(model)
        if o["method"] == "dpmpp-2m":
            return dpmpp_2m(denoise, x, sigmas, callback)
        return dpmpp_3m_sde(denoise, x, sigmas, step_noise_fn(step_noise, stream, x), o["eta"], o["s_noise"],
                            callback)
