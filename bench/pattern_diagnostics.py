"""Why does the demo model miss temporal patterns? Five measurements, each ruling a cause in or out.

  python bench/pattern_diagnostics.py vae --vae ckpts/tta/autoencoderkl_synthcaps     # can the VAE carry patterns?
  python bench/pattern_diagnostics.py text --ldm ckpts/tta/audioldm_synthcaps        # does the text say them?
  python bench/pattern_diagnostics.py generated exp/demo/generated                   # what comes out instead?
  python bench/pattern_diagnostics.py denoise --ldm ckpts/tta/audioldm_synthcaps     # up to which noise level
                                                                                      # does the U-Net see them?
  python bench/pattern_diagnostics.py phrasings exp/x/*/s0                          # which words fail, over runs?

vae: the SynthCaps analyser on the test clips' own mels and on their VAE round trips (mel analysed directly, and
through Griffin-Lim as generation does): the most any generated pattern or sound type can reach, per sound type
with what the misses were heard as.
text: a ridge linear probe on the export's text encoder (the L2-normalised masked mean of its token states: the
sentence embedding all-MiniLM-L6-v2 was trained to give) fitted on the training captions and scored on the held-out test captions, per attribute and
per held-out pattern phrase: which phrasings the frozen encoder places with their training paraphrases.
denoise: real validation clips (their own, seen captions) noised to timestep t with one fixed noise draw; the
U-Net's one-step clean estimate x0(z_t) at guidance 3, decoded, is analysed: the share of clips whose pattern
and sound type the estimate still has, per t. Generation starts from pure noise, so a pattern the estimate
loses at moderate t has to be invented by the sampler where the model only predicts an average.
generated: the pattern confusion of an evaluated generation folder (its eval.json) with the analyser's glide
(octaves/s; SynthCaps glides are +-0.26, the threshold 0.13) and silent-gap share (pulses > 0.1) per prompt.
phrasings: over one or more evaluated generation folders (several trained models, say), for each noun, pitch
word and pattern phrase of the prompts how often the attribute it names was heard: which wordings a model misses.
vae and generated also give, for drums and bells, how many have gaps and how fast they decay: a drum heard as
noise lacks its strikes or their decay, a bell heard as a tone its decay.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from evaluation.attributes import DECAY_DB, GAPS, AttributeAnalyser, Features
from models.tta.autoencoderkl.model import image_to_mel, load_vae_export, mel_to_image
from models.vocoder.griffinlim import GriffinLim
from preprocessors.synthcaps import NOUNS, PATTERN_PHRASES, PATTERNS, PITCH_WORDS, PULSE_PHRASES, SOUND_TYPES
from utils.cli import entry_point_parser, quiet_libraries, run_main
from utils.errors import UserError
from utils.io import read_json

PROCESSED = Path("data/processed/SynthCaps")


def share(hits: list[bool]) -> str:
    return f"{sum(hits)}/{len(hits)} ({100 * sum(hits) / max(1, len(hits)):.0f}%)"


def vae_ceiling(vae_path: str, split: str) -> None:
    vae, mel_cfg, _ = load_vae_export(vae_path)
    vae.eval()
    analyse, vocoder = AttributeAnalyser(mel_cfg), GriffinLim(mel_cfg)
    rows = synthcaps_rows(split)
    hits: dict[tuple[str, str], list[bool]] = collections.defaultdict(list)
    heard: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    struck: dict[str, dict[str, list[Features]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for start in range(0, len(rows), 25):
        chunk = rows[start: start + 25]
        mel = torch.stack([torch.from_numpy(np.load(PROCESSED / "mel" / f"{r['Uid']}.npy")) for r in chunk]).float()
        with torch.no_grad():
            rec = image_to_mel(vae.decode(vae.encode(mel_to_image(mel)).latent_dist.mode()).sample)
        views = {"clip mel": [analyse.mel_features(m.numpy()) for m in mel],
                 "VAE round trip, mel": [analyse.mel_features(m.numpy()) for m in rec],
                 "VAE round trip, Griffin-Lim": [analyse.features(w) for w in vocoder(rec)]}
        for view, feats in views.items():
            for r, f in zip(chunk, feats):
                got, kind = analyse.classify(f), r["Attributes"]["sound_type"]
                hits[(view, r["Attributes"]["pattern"])].append(got["pattern"] == r["Attributes"]["pattern"])
                hits[(view, "sound type")].append(got["sound_type"] == kind)
                heard[(view, kind)][got["sound_type"]] += 1
                if kind in DECAY_DB:
                    struck[view][kind].append(f)
    print(f"analyser on {len(rows)} {split} clips: pattern right per pattern, sound type, and per sound type what the misses were heard as")
    for view in ("clip mel", "VAE round trip, mel", "VAE round trip, Griffin-Lim"):
        print(f"  {view:<28}" + "  ".join(f"{k} {share(hits[(view, k)])}" for k in (*PATTERNS, "sound type")))
        print(f"  {'':<28}" + "  ".join(heard_as(kind, heard[(view, kind)]) for kind in SOUND_TYPES))
    for view, kinds in struck.items():
        print_struck(kinds, view)


def heard_as(kind: str, heard: collections.Counter) -> str:
    """'bell 11/14 (2 as tone, 1 as noise)': how many clips of a sound type the analyser heard as it, and the rest."""
    misses = ", ".join(f"{n} as {other}" for other, n in heard.most_common() if other != kind)
    return f"{kind} {heard[kind]}/{sum(heard.values())}" + (f" ({misses})" if misses else "")


def text_probe(ldm_path: str) -> None:
    from models.tta.audioldm.pipeline import TTAPipeline
    from models.tta.audioldm.text_encoder import masked_mean

    text = TTAPipeline.from_experiment(ldm_path).text
    splits = {s: synthcaps_rows(s) for s in ("train", "test")}

    def mean_states(rows: list[dict]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for start in range(0, len(rows), 100):
                states, mask = text.encode([r["Caption"] for r in rows[start: start + 100]])
                out.append(torch.nn.functional.normalize(masked_mean(states, mask), dim=-1).numpy())  # as sentence-transformers embed
        return np.c_[np.concatenate(out), np.ones(len(rows))]

    x = {s: mean_states(rows) for s, rows in splits.items()}
    print("ridge probe on the normalised masked-mean text states, fitted on train captions, scored on held-out test captions")
    for attr in ("sound_type", "pitch", "pattern"):
        labels = sorted({r["Attributes"][attr] for r in splits["train"]})
        y = np.eye(len(labels))[[labels.index(r["Attributes"][attr]) for r in splits["train"]]]
        w = np.linalg.solve(x["train"].T @ x["train"] + 0.1 * np.eye(x["train"].shape[1]), x["train"].T @ y)
        right = [labels[p] == r["Attributes"][attr] for p, r in zip((x["test"] @ w).argmax(1), splits["test"])]
        print(f"  {attr:<11}{share(right)}")
        if attr == "pattern":
            by_phrase: dict[str, list[bool]] = collections.defaultdict(list)
            for r, ok in zip(splits["test"], right):
                by_phrase[phrase_of(r["Caption"])].append(ok)
            for phrase, oks in sorted(by_phrase.items()):
                print(f"    {phrase:<34}{share(oks)}")


def denoise_horizon(ldm_path: str, per_kind: int, timesteps: list[int]) -> None:
    from models.tta.audioldm.pipeline import TTAPipeline, make_sampler

    pipe = TTAPipeline.from_experiment(ldm_path)
    analyse = AttributeAnalyser(pipe.mel_cfg)
    rows = synthcaps_rows("valid")
    kinds = {"pulsed tone/buzz": lambda a: a["pattern"] == "pulses" and a["sound_type"] in ("tone", "buzz"),
             "bell": lambda a: a["sound_type"] == "bell", "drum": lambda a: a["sound_type"] == "drum",
             "glide": lambda a: a["pattern"] in ("rising", "falling"), "continuous": lambda a: a["pattern"] == "continuous"}
    picked = {k: [r for r in rows if want(r["Attributes"])][:per_kind] for k, want in kinds.items()}
    clips = [r for group in picked.values() for r in group]
    wavs = [sf.read(PROCESSED / "wav" / f"{r['Uid']}.wav", dtype="float32")[0] for r in clips]
    z0 = pipe.encode_audio(wavs, pipe.mel_cfg.target_frames)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    cond = pipe.condition([r["Caption"] for r in clips], None, 3.0)
    schedule = make_sampler("ddpm", pipe.noise_scheduler)  # the training schedule: its add_noise and alphas
    v_pred = pipe.noise_scheduler.get("prediction_type") == "v_prediction"
    print(f"{len(clips)} valid clips, one-step clean estimate at guidance 3: pattern right / sound type right")
    print(f"  {'t':>5}  " + "".join(f"{k:>22}" for k in picked))
    for t in timesteps:
        a = schedule.alphas_cumprod[t]
        zt = schedule.add_noise(z0, noise, torch.tensor([t]))
        pred = pipe.predict(zt, torch.tensor(t), cond, 3.0)
        x0 = a.sqrt() * zt - (1 - a).sqrt() * pred if v_pred else (zt - (1 - a).sqrt() * pred) / a.sqrt()
        got = [analyse.classify(analyse.mel_features(m.numpy())) for m in pipe.decode(x0)]
        cells, i = [], 0
        for group in picked.values():
            g = got[i: i + len(group)]
            pattern = sum(o["pattern"] == r["Attributes"]["pattern"] for o, r in zip(g, group))
            sound = sum(o["sound_type"] == r["Attributes"]["sound_type"] for o, r in zip(g, group))
            cells.append(f"{pattern}/{len(group)} / {sound}/{len(group)}")
            i += len(group)
        print(f"  {t:>5}  " + "".join(f"{c:>22}" for c in cells))


def listed(*tables: dict, kinds: tuple[int, ...] = (0, 1)) -> list[str]:
    """Every option of SynthCaps word tables ({key: (training, held-out)}): training (0) and/or held-out (1)."""
    return [w for table in tables for options in table.values() for k in kinds for w in options[k]]


def phrase_of(caption: str) -> str:
    """The pattern phrase a caption ends with (SynthCaps captions end with it)."""
    return max((p for p in listed(PATTERN_PHRASES, PULSE_PHRASES) if caption.endswith(p)), key=len, default="?")


def synthcaps_rows(split: str) -> list[dict]:
    """The demo's prepared SynthCaps split."""
    if not (PROCESSED / f"{split}.json").is_file():
        raise UserError(f"{PROCESSED / f'{split}.json'} not found; prepare the demo's data first (sh egs/tta/demo/run.sh)")
    return read_json(PROCESSED / f"{split}.json")


def evaluated_clips(folder: Path) -> list[dict]:
    """The per-clip results of an evaluated generation folder."""
    if not (folder / "eval.json").is_file():
        raise UserError(f"{folder / 'eval.json'} not found; run bins/tta/evaluate.py --generated {folder} first")
    return read_json(folder / "eval.json")["per_clip"]


def generated(folder: Path) -> None:
    per_clip = evaluated_clips(folder)
    analyse = AttributeAnalyser()
    confusion: collections.Counter = collections.Counter()
    stats: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    struck: dict[str, list[Features]] = collections.defaultdict(list)
    for r in per_clip:
        want, got = r["expected"]["pattern"], r["measured"]["pattern"]
        confusion[(want, got)] += 1
        wav, _ = sf.read(folder / r["wav"], dtype="float32")
        f = analyse.features(wav)
        stats[want].append((f.glide, f.gap_frac))
        if r["expected"]["sound_type"] in DECAY_DB:
            struck[r["expected"]["sound_type"]].append(f)
    print(f"{len(per_clip)} clips: rows asked for, columns heard")
    print(f"  {'':<12}" + "".join(f"{p:>12}" for p in PATTERNS) + f"   |glide| median  gaps > {GAPS}")
    for want in PATTERNS:
        s = np.array(stats[want]) if stats[want] else np.zeros((0, 2))
        gaps = share(list(s[:, 1] > GAPS)) if len(s) else "-"
        glide = f"{np.median(np.abs(s[:, 0])):.2f}" if len(s) else "-"
        print(f"  {want:<12}" + "".join(f"{confusion[(want, got)]:>12}" for got in PATTERNS) + f"   {glide:>14}  {gaps}")
    print_struck(struck, "generated")


def wording(caption: str) -> dict[str, str]:
    """The noun, pitch word and pattern phrase of a SynthCaps caption, each the longest listed option it holds;
    the pattern phrase is taken off first ("gets higher" is not a pitch word), then the noun."""
    def longest(text: str, table: dict) -> str:
        return max((w for w in listed(table) if w in text), key=len, default="?")
    phrase = phrase_of(caption)
    rest = caption.lower().removesuffix(phrase)
    noun = longest(rest, NOUNS)
    return {"pattern": phrase, "sound_type": noun, "pitch": longest(rest.replace(noun, ""), PITCH_WORDS)}


def phrasings(folders: list[Path]) -> None:
    heard: dict[tuple[str, str, str], list[bool]] = collections.defaultdict(list)
    for folder in folders:
        for r in evaluated_clips(folder):
            for attr, word in wording(r["prompt"]).items():
                want = r["expected"][attr]
                heard[(attr, want, word)].append(r["measured"][attr] == want)
    held_out = set(listed(NOUNS, PITCH_WORDS, PATTERN_PHRASES, PULSE_PHRASES, kinds=(1,)))
    print(f"{len(folders)} generation folders: per wording, how often the attribute it names was heard")
    for attr in ("sound_type", "pitch", "pattern"):
        print(f"  {attr}")
        for (a, want, word), hits in sorted(heard.items()):
            if a == attr:
                print(f"    {want:<12}{word:<34}{'held-out' if word in held_out else 'training':<10}{share(hits)}")


def print_struck(struck: dict[str, list[Features]], view: str) -> None:
    """A drum needs gaps between its strikes and a fast decay, a bell the decay (it rings on between strikes):
    which one is missing?"""
    for kind, feats in sorted(struck.items()):
        gaps, decay = np.array([f.gap_frac for f in feats]), np.array([f.decay_db for f in feats])
        print(f"  {view:<28}{kind}s: gaps > {GAPS} in {share(list(gaps > GAPS))}, decay median {np.median(decay):.2f} dB/frame"
              f" (range {decay.min():.2f} to {decay.max():.2f}; heard as {kind} below {DECAY_DB[kind]})")


def main(argv: list[str] | None = None) -> int:
    p = entry_point_parser(__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    v = sub.add_parser("vae", help="the analyser on clips and their VAE round trips")
    v.add_argument("--vae", default="ckpts/tta/autoencoderkl_synthcaps")
    v.add_argument("--split", default="test")
    t = sub.add_parser("text", help="a linear probe of the text encoder, train -> held-out captions")
    t.add_argument("--ldm", default="ckpts/tta/audioldm_synthcaps")
    d = sub.add_parser("denoise", help="pattern and type of the U-Net's clean estimate of noised real clips, per t")
    d.add_argument("--ldm", default="ckpts/tta/audioldm_synthcaps")
    d.add_argument("--per_kind", type=int, default=10, help="validation clips per kind (pulsed, bell, drum, ...)")
    d.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 600, 700, 800, 900])
    g = sub.add_parser("generated", help="pattern confusion, glides and gaps of an evaluated generation folder")
    g.add_argument("folder", type=Path)
    w = sub.add_parser("phrasings", help="per noun, pitch word and pattern phrase: how often its attribute was heard")
    w.add_argument("folders", type=Path, nargs="+", help="evaluated generation folders (each with eval.json)")
    args = p.parse_args(argv)
    quiet_libraries()
    with torch.no_grad():  # not set_grad_enabled(False): a caller in the same process (the tests) keeps its grads
        if args.what == "vae":
            vae_ceiling(args.vae, args.split)
        elif args.what == "text":
            text_probe(args.ldm)
        elif args.what == "denoise":
            denoise_horizon(args.ldm, args.per_kind, args.timesteps)
        elif args.what == "phrasings":
            phrasings(args.folders)
        else:
            generated(args.folder)
    return 0


if __name__ == "__main__":
    run_main(main)
