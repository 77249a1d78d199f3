"""Text-to-audio models: datasets of prepared mels, export artifacts, the VAE, the latent diffusion model and its
pipeline, published-model conversion. Imports models.base, models.vocoder, modules and utils."""
