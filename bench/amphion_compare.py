"""Training-step speed against Amphion's own TTA models, at Amphion's shipped configuration, alternately in one process.

  python bench/amphion_compare.py --amphion /path/to/Amphion
  python bench/amphion_compare.py --amphion /path/to/Amphion --rounds 5 --only unet

Needs a checkout of Amphion (https://github.com/open-mmlab/Amphion; its `models/tta`, `modules/distributions` and
`config/` are read, and einops and omegaconf must import); nothing of Amphion is part of this project. From
Amphion's `config/autoencoderkl.json` and `config/audioldm.json` it builds Amphion's AutoencoderKL with its
AutoencoderLossWithDiscriminator, and its UNetModel; and ours at the same configuration: diffusers' AutoencoderKL
(ch 128 x [1, 1, 2, 2, 4], 2 resnets per level, 4 latent channels, no mid-block attention, as Amphion's) with our
patch-GAN, and diffusers' UNet2DConditionModel (256 x [1, 2, 4], 2 resnets per level, a transformer at every level,
8 heads, context 768). Inputs: 80 x 624 log-mels (Amphion's AudioCaps setting), so 4 x 5 x 39 latents; batch 2.

- VAE+GAN iteration: one generator and one discriminator update, with the discriminator active (past
  `disc_start`). Amphion's trainer makes them on alternate steps, each with its own VAE forward
  (`AutoencoderKLTrainer.train_step`, optimizer_idx = step % 2); ours makes both from one forward (our task's
  `train_step`, run through our trainer on a small generated corpus of that shape).
- U-Net step: forward, MSE backward and AdamW, the same latents, timesteps and text states for both. Amphion as
  shipped (`use_checkpoint: true`, and its transformer blocks always checkpoint) and with checkpointing off.
  The 400 M-parameter U-Nets are timed in pairs (ours beside each other variant), for memory.

Each round times every variant once, in turn; the table gives the median seconds and the ratio to ours.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
MELS, FRAMES, BATCH = 80, 624, 2


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_amphion(amphion: Path) -> tuple[SimpleNamespace, dict, dict]:
    """Amphion's modules and configs. Amphion's top-level `models` and `modules` packages share their names with
    ours, so they are imported first, kept as module objects, and dropped from sys.modules before ours load."""
    import json5

    for needed in ("models/tta/ldm/audioldm.py", "models/tta/autoencoder/autoencoder.py", "config/audioldm.json", "config/autoencoderkl.json"):
        if not (amphion / needed).is_file():
            fail(f"{amphion} is not an Amphion checkout (no {needed}); pass --amphion DIR")
    ldm_cfg = json5.loads((amphion / "config" / "audioldm.json").read_text())["model"]["audioldm"]
    vae_cfg = json5.loads((amphion / "config" / "autoencoderkl.json").read_text())["model"]
    sys.path.insert(0, str(amphion))
    try:
        from models.tta.autoencoder import autoencoder, autoencoder_loss
        from models.tta.ldm import audioldm, attention
    except ImportError as err:
        fail(f"Amphion's models do not import ({err}); install what they need (einops, omegaconf)")
    finally:
        sys.path.remove(str(amphion))
        for name in [n for n in sys.modules if n.split(".")[0] in ("models", "modules")]:
            del sys.modules[name]
    mods = SimpleNamespace(autoencoder=autoencoder, loss=autoencoder_loss, audioldm=audioldm, attention=attention)
    return mods, vae_cfg, ldm_cfg


def median_times(variants: dict, rounds: int) -> dict[str, float]:
    """Each variant once per round, in turn (after one warm-up call each), so drifts in machine speed hit all."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ---- VAE + GAN ---------------------------------------------------------------------------------

def amphion_vae_iteration(amp: SimpleNamespace, vae_cfg: dict):
    import torch

    model = amp.autoencoder.AutoencoderKL(SimpleNamespace(**vae_cfg["autoencoderkl"]))
    criterion = amp.loss.AutoencoderLossWithDiscriminator(SimpleNamespace(**vae_cfg["loss"]))
    opt_ae = torch.optim.AdamW(model.parameters(), lr=4e-4)  # Amphion's trainer: model params / discriminator params
    opt_disc = torch.optim.AdamW(criterion.discriminator.parameters(), lr=4e-4)
    mel = torch.randn(BATCH, MELS, FRAMES)
    step = vae_cfg["loss"]["disc_start"]  # discriminator active, as in ours

    def train_step(optimizer_idx: int) -> None:  # AutoencoderKLTrainer.train_step, one optimizer per call
        inputs = mel.unsqueeze(1)
        reconstructions, posterior = model(inputs)
        losses = criterion(inputs=inputs, reconstructions=reconstructions, posteriors=posterior, optimizer_idx=optimizer_idx,
                           global_step=step, last_layer=model.get_last_layer(), split="train")
        opt = opt_ae if optimizer_idx == 0 else opt_disc
        opt.zero_grad()
        losses["loss" if optimizer_idx == 0 else "d_loss"].backward()
        opt.step()

    def iteration() -> None:
        train_step(0)
        train_step(1)

    return iteration


def our_vae_iteration(work: Path, channels_last: bool):
    import torch

    from models.base.trainer import Trainer
    from models.tta.autoencoderkl.task import AutoencoderKLTask
    from run_all import synthcaps_corpus  # bench/ is on the path: this script's folder
    from utils.config import load_config

    audio = [f"audio.n_mels={MELS}", f"audio.target_frames={FRAMES}", f"audio.segment_seconds={FRAMES / 100}"]
    data = synthcaps_corpus(work / "data", audio, clips=8)
    sets = audio + [f"data.processed_dir={data}", 'data.datasets=["SynthCaps"]', f"output_dir={work / 'ckpts'}",
                    f"train.batch_size={BATCH}", "train.mixed_precision=no", "loss.disc_start=0", "loss.disc_layers=3",
                    "loss.disc_channels=64", "model.block_out_channels=[128,128,256,256,512]", "model.layers_per_block=2",
                    "model.latent_channels=4", "model.mid_block_add_attention=false"]
    cfg, res = load_config(ROOT / "config/autoencoderkl.json", AutoencoderKLTask.Config, sets)
    trainer = Trainer(AutoencoderKLTask, cfg, res, "vae_channels_last" if channels_last else "vae")
    if channels_last:  # convolutions follow their weights' layout
        for module in trainer.task.modules.values():
            module.to(memory_format=torch.channels_last)
    batch = next(iter(trainer.train_dl))
    steps = iter(range(10, 10**6))
    return lambda: trainer.task.train_step(batch, next(steps))


# ---- U-Net ---------------------------------------------------------------------------------------

def unet_step(unet, forward):
    """forward(unet, z, t, context) -> prediction; one step of MSE + AdamW on fixed inputs."""
    import torch

    gen = torch.Generator().manual_seed(0)
    z = torch.randn(BATCH, 4, MELS // 16, FRAMES // 16, generator=gen)
    t = torch.randint(0, 1000, (BATCH,), generator=gen)
    context = torch.randn(BATCH, 16, 768, generator=gen)
    target = torch.randn(z.shape, generator=gen)
    opt = torch.optim.AdamW(unet.parameters(), lr=5e-5)

    def step() -> None:
        loss = torch.nn.functional.mse_loss(forward(unet, z, t, context), target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def amphion_unet(amp: SimpleNamespace, ldm_cfg: dict, checkpointing: bool):
    unet = amp.audioldm.AudioLDM(SimpleNamespace(**{**ldm_cfg, "use_checkpoint": checkpointing}))
    for block in unet.modules():
        if isinstance(block, amp.attention.BasicTransformerBlock):
            block.checkpoint = checkpointing  # Amphion's transformer blocks checkpoint unless told otherwise
    return unet_step(unet, lambda m, z, t, c: m(z, timesteps=t, context=c))


def our_unet(ldm_cfg: dict, channels_last: bool):
    import torch

    from models.tta.audioldm.model import UNetConfig, build_unet

    levels = len(ldm_cfg["channel_mult"])
    cfg = UNetConfig(block_out_channels=[ldm_cfg["model_channels"] * m for m in ldm_cfg["channel_mult"]],
                     layers_per_block=ldm_cfg["num_res_blocks"], attention_levels=[True] * levels,
                     attention_head_dim=ldm_cfg["num_heads"], cross_attention_dim=ldm_cfg["context_dim"], norm_num_groups=32,
                     gradient_checkpointing=False, channels_last=channels_last)
    unet = build_unet(cfg, latent_channels=ldm_cfg["in_channels"])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return unet_step(unet, lambda m, z, t, c: m(z.contiguous(memory_format=layout), t, encoder_hidden_states=c).sample)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amphion", type=Path, required=True, help="an Amphion checkout")
    parser.add_argument("--rounds", type=int, default=3, help="timed calls of each variant (after one warm-up)")
    parser.add_argument("--only", choices=("vae", "unet"), help="one comparison only")
    args = parser.parse_args()

    amp, vae_cfg, ldm_cfg = load_amphion(args.amphion.resolve())
    sys.path.insert(0, str(ROOT))
    import torch

    from utils.cli import quiet_libraries
    from utils.machine import describe

    quiet_libraries()
    torch.manual_seed(0)
    rows = []
    if args.only in (None, "unet"):
        # 400 M parameters with AdamW states take about 6.5 GB per model: two models alive at a time, each pair
        # timed alternately against a fresh copy of ours
        others = {"ours, channels_last": lambda: our_unet(ldm_cfg, True),
                  "Amphion as shipped (checkpointing)": lambda: amphion_unet(amp, ldm_cfg, True),
                  "Amphion, checkpointing off": lambda: amphion_unet(amp, ldm_cfg, False)}
        for name, make in others.items():
            sec = median_times({"ours": our_unet(ldm_cfg, False), name: make()}, args.rounds)
            rows += [("U-Net step", f"ours (beside {name})", sec["ours"], 1.0), ("U-Net step", name, sec[name], sec[name] / sec["ours"])]
    if args.only in (None, "vae"):
        with tempfile.TemporaryDirectory(prefix="tta_amphion_") as tmp:
            sec = median_times({"ours": our_vae_iteration(Path(tmp), False), "ours, channels_last": our_vae_iteration(Path(tmp), True),
                                "Amphion": amphion_vae_iteration(amp, vae_cfg)}, args.rounds)
        rows += [("VAE+GAN iteration", name, s, s / sec["ours"]) for name, s in sec.items()]
    print(f"\n{describe()}; batch {BATCH}, {MELS} x {FRAMES} mels, median of {args.rounds} alternating rounds")
    print(f"{'step':<20}{'model':<38}{'s':>9}{'x ours':>9}")
    for step, name, s, ratio in rows:
        print(f"{step:<20}{name:<38}{s:>9.3f}{ratio:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
