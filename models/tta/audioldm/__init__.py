"""Stage 2: latent diffusion (text encoder, U-Net, LoRA, training task, pipeline)."""

# The sampler names, here so that entry points can list them without importing diffusers;
# pipeline.SAMPLERS maps each, in this order, to its diffusers scheduler.
SAMPLER_NAMES = ("ddpm", "ddim", "dpm++", "dpm++sde", "unipc", "euler", "euler_a", "heun", "pndm")


def parse_span(text: str) -> tuple[float, float]:
    """An inpainting span 'START:END' in seconds -> (start, end) (the CLI's and the app's format)."""
    from utils.errors import UserError  # this module stays import-free: entry points read it before --help

    try:
        start, end = (float(x) for x in text.split(":"))
    except ValueError:
        raise UserError(f"--inpaint {text!r}: give START:END in seconds, e.g. --inpaint 1.0:1.8") from None
    return start, end
