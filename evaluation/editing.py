"""How well zero-shot edits follow the text and keep the clip, measured with the SynthCaps attribute analyser on
held-out test clips (rows that carry their attributes):
  - audio-to-audio: each clip prompted with another pitch class (same type and pattern); per strength, the share
    whose pitch became the target and the share whose type and pattern were kept; by noising the clip (SDEdit)
    or by inverting it with its own caption (`invert`, the --source_prompt path);
  - inpainting: a 0.8 s span prompted with another sound type; adherence inside the span, and the L1 of the
    decoded log-mel outside it relative to the VAE round trip's (both against the clip's own mel);
  - continuation to 4x the clip: adherence of each generated window to the clip's caption (all three attributes,
    and each one), against plain generation's, and the largest waveform jump at the window joins relative to
    the largest elsewhere;
  - seconds per clip of each edit and of plain generation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from evaluation.attributes import AttributeAnalyser
from models.tta.audioldm.editing import Edit
from preprocessors.synthcaps import PATTERNS_BY_TYPE, PITCHES, SOUND_TYPES, Attributes, caption
from utils.mel import MelFrontEnd

STRENGTHS = (0.3, 0.5, 0.7, 0.9)
INVERSION_STRENGTHS = (0.5, 0.7, 0.8, 0.85, 0.9, 1.0)  # inversion keeps the clip even from the first step: 1 is worth trying
SPAN_SECONDS = 0.8
ATTRIBUTES = ("sound_type", "pitch", "pattern")


@dataclass
class Clip:
    wav: np.ndarray
    attrs: Attributes
    caption: str


def other_pitch(a: Attributes) -> Attributes:
    return Attributes(a.sound_type, PITCHES[(PITCHES.index(a.pitch) + 1) % len(PITCHES)], a.pattern)


def other_type(a: Attributes) -> Attributes:
    """The next sound type that has the clip's pattern (bells and drums only pulse)."""
    for k in range(1, len(SOUND_TYPES)):
        t = SOUND_TYPES[(SOUND_TYPES.index(a.sound_type) + k) % len(SOUND_TYPES)]
        if a.pattern in PATTERNS_BY_TYPE[t]:
            return Attributes(t, a.pitch, a.pattern)
    raise ValueError(f"no other sound type has pattern {a.pattern}")


def share(hits: list[bool]) -> float:
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


class EditingBench:
    def __init__(self, pipe, clips: list[Clip], batch_size: int = 20, seed: int = 0) -> None:
        self.pipe, self.clips, self.batch, self.seed = pipe, clips, batch_size, seed
        self.sr = pipe.mel_cfg.sample_rate
        self.analyse = AttributeAnalyser(pipe.mel_cfg)
        self.front = MelFrontEnd(pipe.mel_cfg)

    def run(self, prompts: list[str], edit_of=None, **kwargs) -> tuple[torch.Tensor, torch.Tensor, float]:
        """All clips in batches (edit_of(batch clips) -> Edit): waveforms [N, samples], the decoded log-mels
        [N, n_mels, T] they were vocoded from, and seconds per clip."""
        wavs, mels, t0 = [], [], time.perf_counter()
        for start in range(0, len(prompts), self.batch):
            part = self.clips[start: start + self.batch]
            edit = edit_of(part) if edit_of else None
            out = self.pipe(prompts[start: start + self.batch], seed=self.seed + start, edit=edit, **kwargs)
            wavs.append(out.wav)
            mels.append(out.mel)
        return torch.cat(wavs), torch.cat(mels), (time.perf_counter() - t0) / len(prompts)

    def prompts(self, targets: list[Attributes], case: int) -> list[str]:
        """Held-out captions of `targets` from the case's own generator, so that a case's prompts (and scores) do
        not depend on which cases ran before it."""
        rng = np.random.default_rng(self.seed + case)
        return [caption(a, rng, heldout=True) for a in targets]

    def audio_to_audio(self, invert: bool = False, strengths: tuple[float, ...] | None = None) -> list[dict]:
        """Rows per strength; without `invert` the first row (0.01: no step runs) is the VAE round trip, the most
        that can be kept. Both modes use the same target prompts."""
        targets = [other_pitch(c.attrs) for c in self.clips]
        prompts = self.prompts(targets, case=0)
        rows = []
        strengths = strengths or (INVERSION_STRENGTHS if invert else STRENGTHS)
        for strength in strengths if invert else (0.01, *strengths):
            edit_of = lambda part, s=strength: Edit([c.wav for c in part], strength=s,  # noqa: E731
                                                    source_prompt=[c.caption for c in part] if invert else None)
            wavs, _, sec = self.run(prompts, edit_of)
            got = [self.analyse(w) for w in wavs]
            rows.append({"strength": strength, "inverted": invert, "pitch_to_target": share([g["pitch"] == a.pitch for g, a in zip(got, targets)]),
                         "type_and_pattern_kept": share([g["sound_type"] == c.attrs.sound_type and g["pattern"] == c.attrs.pattern
                                                         for g, c in zip(got, self.clips)]),
                         "seconds_per_clip": sec})
        return rows

    def inpainting(self) -> dict:
        seconds = len(self.clips[0].wav) / self.sr
        start = round((seconds - SPAN_SECONDS) / 2, 2)
        span = (start, start + SPAN_SECONDS)
        targets = [other_type(c.attrs) for c in self.clips]
        wavs, edited, sec = self.run(self.prompts(targets, case=1), lambda part: Edit([c.wav for c in part], inpaint=[span]))
        a, b = (int(s * self.sr) for s in span)
        inside = [self.analyse(w[a:b]) for w in wavs]
        frames = self.pipe.frames_for(seconds)
        originals = self.front(torch.from_numpy(np.stack([c.wav for c in self.clips])))[..., :frames]
        round_trip = torch.cat([self.pipe.round_trip([c.wav for c in self.clips[i: i + self.batch]], frames)
                                for i in range(0, len(self.clips), self.batch)])
        hop = self.pipe.mel_cfg.hop_length
        outside = torch.ones(frames, dtype=torch.bool)
        outside[a // hop: b // hop + 1] = False
        l1 = lambda x: (x - originals)[..., outside].abs().mean().item()  # noqa: E731
        return {"span_s": list(span), "type_in_span": share([g["sound_type"] == t.sound_type for g, t in zip(inside, targets)]),
                "outside_l1": l1(edited), "round_trip_l1": l1(round_trip), "ratio": l1(edited) / l1(round_trip),
                "seconds_per_clip": sec}

    def continuation(self, factor: int = 4) -> dict:
        seconds = len(self.clips[0].wav) / self.sr
        prompts = [c.caption for c in self.clips]
        plain, _, plain_sec = self.run(prompts)
        long, _, sec = self.run(prompts, lambda part: Edit([c.wav for c in part]), duration=seconds * factor)
        n = int(seconds * self.sr)

        def adherence(wavs: torch.Tensor) -> dict[str, float]:
            """Shares with all three attributes right, and with each one right: a continued glide can only keep
            its pitch class by holding its end pitch, so a window's pattern can fail while its type holds."""
            got = [self.analyse(w) for w in wavs]
            right = [{k: g[k] == getattr(c.attrs, k) for k in ATTRIBUTES} for g, c in zip(got, self.clips)]
            return {"all": share([all(r.values()) for r in right]), **{k: share([r[k] for r in right]) for k in ATTRIBUTES}}

        windows = [adherence(long[:, k * n: (k + 1) * n]) for k in range(1, factor)]
        step = n // 2  # windows overlap by half: a new one starts every half training length
        joins = list(range(n, long.shape[1], step))
        diffs = long.diff(dim=1).abs()
        near = torch.zeros(diffs.shape[1], dtype=torch.bool)
        for j in joins:
            near[j - 160: j + 160] = True
        ratio = diffs[:, near].amax(dim=1) / diffs[:, ~near].amax(dim=1)  # per clip
        return {"plain_adherence": adherence(plain), "window_adherence": windows,
                "join_jump_ratio_max": ratio.max().item(), "join_jump_ratio_median": ratio.median().item(),
                "clips_with_a_larger_jump_at_a_join": share((ratio > 1).tolist()),
                "seconds_per_clip": sec, "plain_seconds_per_clip": plain_sec}
