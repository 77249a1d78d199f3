"""Zero-shot edits of a given clip with a text-to-audio latent diffusion model (AudioLDM, Liu et al. 2023, sec. 3.4).

What to keep and what to regenerate is a latent mask; the pipeline's one sampling loop does the rest:
  - audio-to-audio (SDEdit): noise the clip's latent to the step `strength` selects and denoise with the text;
    with a caption of the clip (`source_prompt`), invert it instead (edit-friendly DDPM inversion,
    Huberman-Spiegelglas et al. 2024, as used for audio by Manor & Michaeli 2024): every step's noise is the one
    that makes the source caption's denoising land on the clip's own noised latents, so the target caption
    moves only what the two captions disagree on;
  - inpainting / continuation: after every step the kept latent frames are replaced by the clip's latent noised to
    that step (RePaint, Lugmayr et al. 2022; optional resampling), and by the clip's latent itself at the end;
  - super-resolution: the same with a mask over the latent's mel axis (bins above the cutoff regenerated);
  - long audio: overlapping windows of the training length, each one's first frames kept from the previous one.
diffusers' inpainting pipelines work on images with a pixel mask and one fixed size, so the latent masks, the
window plan and the checks that name the command-line option are written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import librosa
import numpy as np
import torch

from utils.errors import UserError
from utils.mel import MelConfig

RESAMPLING_SAMPLERS = ("ddim", "ddpm")  # stateless steps: a step can be taken again after re-noising
SILENCE_PEAK = 1e-4  # an init clip whose peak stays below this has nothing to edit


@dataclass
class Edit:
    """A clip to start from and what to do with it; exactly one of strength / inpaint / super_resolution, or
    none of them for continuation (the pipeline's `duration` longer than the clip)."""

    audio: list[np.ndarray]  # one waveform at the model's sample rate, or one per prompt (equal lengths)
    strength: float | None = None  # audio-to-audio, in (0, 1]: the share of the sampler's steps that run
    inpaint: list[tuple[float, float]] = field(default_factory=list)  # (start, end) seconds to regenerate
    super_resolution: float | None = None  # Hz: mel bins above it are regenerated, those below kept
    resample: int = 1  # RePaint's resampling: each step is taken this many times (ddim / ddpm)
    source_prompt: str | list[str] | None = None  # audio-to-audio: the clip's caption (one, or one per clip); inverts it
    source: str = "init audio"  # how errors name the clip (the file)

    @property
    def mode(self) -> str:
        if self.strength is not None:
            return "audio_to_audio"
        if self.inpaint:
            return "inpainting"
        if self.super_resolution is not None:
            return "super_resolution"
        return "continuation"

    @property
    def source_captions(self) -> list[str]:
        """`source_prompt` as a list: one caption for every clip, or one per clip."""
        if self.source_prompt is None:
            return []
        return [self.source_prompt] if isinstance(self.source_prompt, str) else list(self.source_prompt)

    def as_dict(self) -> dict:
        """The edit settings a generated clip is written with (prompts.jsonl)."""
        out = {"edit": self.mode, "init_audio": self.source}
        if self.strength is not None:
            out["strength"] = self.strength
        if self.inpaint:
            out["inpaint"] = [list(s) for s in self.inpaint]
        if self.super_resolution is not None:
            out["super_resolution"] = self.super_resolution
        if self.resample > 1:
            out["resample"] = self.resample
        if self.source_prompt is not None:
            out["source_prompt"] = self.source_prompt
        return out


def check_audio(audio: list[np.ndarray], source: str, sample_rate: int, max_seconds: float) -> float:
    """Clips to edit: present, of one length, at most `max_seconds`, finite and not silent; returns their seconds."""
    if not audio:
        raise UserError("an edit needs --init_audio")
    lengths = {len(a) for a in audio}
    if len(lengths) > 1:
        raise UserError(f"{source}: the clips of one edit batch must have the same length, got {sorted(lengths)} samples")
    seconds = lengths.pop() / sample_rate
    if seconds > max_seconds:
        raise UserError(f"{source}: {seconds:.1f} s is longer than {max_seconds:g} s; cut it first")
    for wav in audio:
        if not np.isfinite(wav).all():
            raise UserError(f"{source}: the audio holds NaN or infinite samples")
        if np.abs(wav).max() < SILENCE_PEAK:
            raise UserError(f"{source}: the audio is silent (peak below {SILENCE_PEAK}); give a clip with sound")
    return seconds


def check_edit(edit: Edit, sample_rate: int, max_seconds: float) -> float:
    """Every condition an edit needs, as one-line errors naming the option; returns the clip length in seconds."""
    modes = [edit.strength is not None, bool(edit.inpaint), edit.super_resolution is not None]
    if sum(modes) > 1:
        raise UserError("--strength, --inpaint and --super_resolution are different edits: give one of them")
    seconds = check_audio(edit.audio, edit.source, sample_rate, max_seconds)
    if edit.strength is not None and not 0 < edit.strength <= 1:
        raise UserError(f"--strength {edit.strength} must be in (0, 1]")
    if edit.super_resolution is not None and not 0 < edit.super_resolution < sample_rate / 2:
        raise UserError(f"--super_resolution {edit.super_resolution} Hz must be in (0, {sample_rate / 2:g}) Hz")
    spans = sorted(edit.inpaint)
    for start, end in spans:
        if not 0 <= start < end <= seconds + 1e-6:
            raise UserError(f"--inpaint {start}:{end} must lie within the clip (0 to {seconds:.2f} s) with START < END")
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise UserError(f"--inpaint spans {s0}:{e0} and {s1}:{e1} overlap; give them as one span")
    if edit.resample < 1:
        raise UserError(f"--resample {edit.resample} must be at least 1")
    if edit.resample > 1 and edit.strength is not None:
        raise UserError("--resample applies to --inpaint, --super_resolution and continuation, not to --strength")
    if edit.source_prompt is not None:
        if edit.strength is None:
            raise UserError("--source_prompt describes the clip for audio-to-audio: give it with --strength")
        captions = edit.source_captions
        if len(captions) not in (1, len(edit.audio)):
            raise UserError(f"{len(captions)} source prompts for {len(edit.audio)} init clips: give one, or one per clip")
        if any(not c.strip() for c in captions):
            raise UserError("--source_prompt is empty: describe the given clip, or leave the option out")
    return seconds


def time_mask(spans: list[tuple[float, float]], latent_frames: int, seconds_per_frame: float) -> torch.Tensor:
    """[T'] 1 where a span's latent frames are regenerated (every frame a span touches), 0 where kept."""
    mask = torch.zeros(latent_frames)
    for start, end in spans:
        mask[int(start / seconds_per_frame): math.ceil(end / seconds_per_frame - 1e-6)] = 1
    return mask


def frequency_mask(cutoff_hz: float, cfg: MelConfig, latent_bins: int) -> torch.Tensor:
    """[F'] 1 for the latent mel bins to regenerate: those holding any mel band centred at or above the cutoff."""
    centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.fmin, fmax=cfg.fmax)[1:-1]
    per_bin = cfg.n_mels // latent_bins
    top = centres.reshape(latent_bins, per_bin).max(axis=1)
    mask = torch.from_numpy((top >= cutoff_hz).astype(np.float32))
    if mask.all():
        raise UserError(f"--super_resolution {cutoff_hz:g} Hz keeps no mel band; give a cutoff above {top[0]:.0f} Hz")
    if not mask.any():
        raise UserError(f"--super_resolution {cutoff_hz:g} Hz leaves nothing to regenerate: the model's mels stop at {cfg.fmax:g} Hz")
    return mask


@dataclass
class Window:
    """One sampling pass of a long generation: `keep` first latent frames taken from what is already made."""

    frames: int  # latent frames in this pass
    keep: int  # leading frames kept (the previous output's last ones, or the init clip)


def plan_windows(made: int, total: int, window: int, overlap: int) -> list[Window]:
    """Passes that grow `made` latent frames (the init clip's, or 0) to `total`. Every pass is a full window
    (the whole length when shorter) so its length stays a multiple of the U-Net's stride; it keeps `overlap`
    frames of context, or more when the rest needs fewer new frames (all of a short clip, in continuation)."""
    if not 0 <= overlap < window:
        raise UserError(f"the window overlap ({overlap} latent frames) must be in [0, {window})")
    frames, passes = min(window, total), []
    while made < total:
        keep = max(min(made, overlap), frames - (total - made))
        passes.append(Window(frames, keep))
        made += frames - keep
    return passes
