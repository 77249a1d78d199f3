"""Stage 2: latent diffusion (text encoder, U-Net, LoRA, training task, pipeline)."""

# The sampler names, here so that entry points can list them without importing diffusers;
# pipeline.SAMPLERS maps each, in this order, to its diffusers scheduler.
SAMPLER_NAMES = ("ddpm", "ddim", "dpm++", "dpm++sde", "unipc", "euler", "euler_a", "heun", "pndm")
