"""The ``diffrl`` policy type: a compact conditional diffusion policy with exact denoising log-probabilities."""
