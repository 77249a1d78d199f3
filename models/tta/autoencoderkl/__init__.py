"""Stage 1: the mel VAE (diffusers' AutoencoderKL), its losses and training task."""
