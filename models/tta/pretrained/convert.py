"""Published checkpoint -> this toolkit's export, written only after the whole source has been read and
checked, into a temporary folder renamed into place (an error or a kill leaves nothing half-written).

Parts: `all` (a stage-2 export: inference, evaluation, fine-tuning), `vae` (a stage-1 export, for
`--pretrained_vae` or `model.autoencoder_path`), `vocoder` (a HiFi-GAN export, for `--vocoder_path`).
"""

from __future__ import annotations

from pathlib import Path

from models.tta.artifact import write_artifact
from models.tta.audioldm.model import check_context_dim
from models.tta.audioldm.text_encoder import output_width
from models.tta.audioldm.pipeline import save_export
from models.tta.autoencoderkl.model import STAGE as VAE_STAGE
from models.tta.pretrained import KINDS, PARTS
from models.tta.pretrained.parts import AUDIO
from models.tta.pretrained.sources import Published, read_audioldm_ckpt, read_audioldm_folder, read_tango_folder
from models.vocoder.task import STAGE as VOCODER_STAGE
from utils.errors import UserError
from utils.io import atomic_dir



def read(kind: str, src: Path, part: str, text_encoder: Path | None) -> Published:
    if kind == "audioldm":
        return read_audioldm_folder(src, part)
    if kind == "audioldm-ckpt":
        return read_audioldm_ckpt(src, part, text_encoder)
    if kind == "tango":
        return read_tango_folder(src, part, text_encoder)
    raise UserError(f"--from {kind!r}: choose one of {', '.join(KINDS)}")


def check_model(model: Published) -> None:
    """The U-Net, text encoder and VAE must fit each other (conditioning mode, widths, latent channels)."""
    unet, vae = model.unet, model.vae
    if unet.config.in_channels != vae.config.latent_channels:
        raise UserError(f"the U-Net takes {unet.config.in_channels} channels but the VAE makes {vae.config.latent_channels}")
    output = model.text_config["output"]  # check_context_dim also refuses a mode mismatch, both ways
    check_context_dim(unet, output_width(model.text_model.config, output), type(model.text_model).__name__, output)


def write(model: Published, part: str, out: Path) -> None:
    config = {"converted_from": model.source}
    if part == "vae":
        model.vae.save_pretrained(str(out / "vae"), safe_serialization=True)
        write_artifact(out, VAE_STAGE, config, AUDIO, latent_std=1.0 / model.vae.config.scaling_factor)
    elif part == "vocoder":
        model.vocoder.save_pretrained(str(out / "vocoder"), safe_serialization=True)
        write_artifact(out, VOCODER_STAGE, config, AUDIO)
    else:
        save_export(
            out, vae=model.vae, unet=model.unet, text_model=model.text_model, tokenizer=model.tokenizer,
            text_config=model.text_config, noise_scheduler=model.noise_scheduler, sampler=model.sampler, audio=AUDIO,
            config=config, vocoder=model.vocoder,
        )


def convert(kind: str, src: Path, out: Path, part: str = "all", text_encoder: Path | None = None, overwrite: bool = False) -> Path:
    """Read `src` as `kind`, then write `part` of it to `out`; returns `out`."""
    if part not in PARTS:
        raise UserError(f"--only {part!r}: choose one of {', '.join(PARTS[1:])}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} already exists and is not empty; pass --overwrite to replace it")
    if text_encoder is not None and not text_encoder.is_dir():
        raise UserError(f"--text_encoder {text_encoder} is not a folder")
    model = read(kind, src, part, text_encoder)
    if part == "all":
        check_model(model)
    with atomic_dir(out) as tmp:
        write(model, part, tmp)
    return out

