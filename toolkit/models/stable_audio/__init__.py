"""Stable Audio Open as a recipe: text + timing to audio (DiT over codec latents, v-diffusion or rectified flow)."""
