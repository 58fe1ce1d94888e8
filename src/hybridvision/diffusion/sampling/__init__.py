"""Sampling: noise schedules and diffusers' samplers, guidance, and what a denoiser is conditioned on."""
