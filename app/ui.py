"""The Gradio page: Generate and Edit tabs over TTAPipeline (the Python API run_inference.sh uses) and an Instruct
tab over an AUDIT editor (EditorPipeline, as run_edit.sh), a model and LoRA picker, results with players, mel
images, downloads, timings and the equivalent command line."""

from __future__ import annotations

import atexit
import shlex
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from app.models import Entry, LoadedModels, find_models
from models.tta.artifact import read_stage
from models.tta.audioldm import SAMPLER_NAMES, parse_span
from models.tta.audioldm.editing import Edit
from models.tta.audioldm.pipeline import check_duration
from utils.audio import load_audio, save_wav
from utils.errors import UserError
from utils.io import slugify
from utils.plot import save_mel_png

MAX_SAMPLES = 4  # audio players on the page
KEEP_RESULTS_S = 24 * 3600  # a result's files (players, downloads) are kept this long, or until the app stops
DEFAULT = "model's default"
EDIT_MODES = ("audio-to-audio", "inpainting", "continuation", "super-resolution")
INFERENCE = ["sh", "egs/tta/audioldm/run_inference.sh"]
EDIT = ["sh", "egs/tta/audit/run_edit.sh"]


class App:
    def __init__(self, root: Path, default: Path | None, device: str, keep_models: int, max_model_gb: float) -> None:
        self.root, self.default = root, default
        self.loaded = LoadedModels(keep_models, device, max_model_gb * 2**30)
        # results live here (players and downloads point into it): a day each, and all gone when the app stops
        self.out_root = Path(tempfile.mkdtemp(prefix="tta_app_"))
        atexit.register(shutil.rmtree, self.out_root, True)

    def entries(self) -> list[Entry]:
        found = find_models(self.root)
        if self.default is not None and all(e.path.resolve() != self.default.resolve() for e in found):
            found.insert(0, Entry(self.default, read_stage(self.default), f"{self.default.name} (--checkpoint_path)"))
        return found

    def choices(self, stage: str) -> list[tuple[str, str]]:
        return [(e.label, str(e.path)) for e in self.entries() if e.stage == stage]

    def pipeline(self, model: str | None, lora: str | None, lora_scale: float):
        if not model:
            raise UserError(f"no model: train one (sh egs/tta/audioldm/run_train.sh) or convert one into {self.root}")
        loras = ((lora, float(lora_scale)),) if lora else ()
        return self.loaded.get(Path(model), loras)

    def run(self, model, lora, lora_scale, prompt, negative, duration, sampler, steps, guidance, seed, num_samples,
            edit=None, edit_args: list[str] | None = None):
        """One request: generate (or edit), write wavs and mel images, describe how to reproduce it."""
        if not prompt or not prompt.strip():
            raise UserError("empty prompt: type what the sound should be")
        duration, steps, guidance = (optional_number(v, name) for v, name in
                                     ((duration, "duration"), (steps, "steps"), (guidance, "guidance scale")))
        if duration is not None:
            check_duration(duration)
        pipe = self.pipeline(model, lora, lora_scale)
        t0 = time.perf_counter()
        steps = None if steps is None else int(steps)
        sampler = None if sampler in (None, "", DEFAULT) else sampler
        seed = int(seed or 0)
        out = pipe([prompt.strip()], negative_prompt=negative or None, num_steps=steps, guidance_scale=guidance,
                   sampler=sampler, seed=seed, duration=duration,
                   num_samples=int(num_samples), progress=True, edit=edit)
        seconds = time.perf_counter() - t0
        wavs, pngs = self.save(out, prompt, pipe.mel_cfg.sample_rate)
        command = [*INFERENCE, "--checkpoint_path", model, "--text", prompt.strip(), "--seed", str(seed), "--num_samples", str(int(num_samples))]
        command += (["--sampler", sampler] if sampler else []) + (["--num_steps", str(steps)] if steps else [])
        command += ["--guidance_scale", f"{guidance:g}"] if guidance is not None else []
        command += (["--negative_text", negative] if negative else []) + (["--duration", f"{duration:g}"] if duration is not None else [])
        command += (["--lora", lora, "--lora_scale", f"{float(lora_scale):g}"] if lora else []) + (edit_args or [])
        info = (f"{len(wavs)} clip(s) of {out.seconds:.2f} s in {seconds:.1f} s (seeds {out.seeds[0]}..{out.seeds[-1]}).\n\n"
                f"Reproduce:\n```\n{shlex.join(command)}\n```")
        return self.results(wavs, pngs, info)

    def save(self, out, title: str, sample_rate: int) -> tuple[list[str], list[str]]:
        """A result's clips as wav files and mel images in a new folder; their paths. Results older than
        KEEP_RESULTS_S go first, so an app left serving for weeks does not fill its disk."""
        for old in self.out_root.iterdir():
            if time.time() - old.stat().st_mtime > KEEP_RESULTS_S:
                shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=self.out_root))
        wavs, pngs = [], []
        for i, (wav, mel) in enumerate(zip(out.wav, out.mel)):
            stem = folder / f"{i:02d}_{slugify(title)}"
            save_wav(f"{stem}.wav", wav.numpy(), sample_rate)
            save_mel_png(f"{stem}.png", mel.numpy(), title)
            wavs.append(f"{stem}.wav")
            pngs.append(f"{stem}.png")
        return wavs, pngs

    @staticmethod
    def results(wavs: list[str], pngs: list[str], info: str) -> tuple:
        players = [gr.update(value=w, visible=True) for w in wavs] + [gr.update(value=None, visible=False)] * (MAX_SAMPLES - len(wavs))
        return (*players, pngs, wavs, info)

    def instruct(self, editor, init_audio, instruction, sampler, steps, guidance, source_guidance, seed):
        """Edit the clip by an instruction with an AUDIT editor."""
        if not editor:
            raise UserError(f"no AUDIT editor under {self.root}: train one with sh egs/tta/audit/run_train.sh")
        if not init_audio:
            raise UserError("no clip to edit: upload or record one")
        if not instruction or not instruction.strip():
            raise UserError("empty instruction: say what to do with the clip")
        steps, guidance, source_guidance = (optional_number(v, name) for v, name in
                                            ((steps, "steps"), (guidance, "guidance scale"), (source_guidance, "source guidance scale")))
        pipe = self.loaded.get(Path(editor))
        sampler = None if sampler in (None, "", DEFAULT) else sampler
        seed = int(seed or 0)
        t0 = time.perf_counter()
        out = pipe([load_audio(init_audio, pipe.mel_cfg.sample_rate)], [instruction.strip()], seed=seed, source="the uploaded clip",
                   num_steps=None if steps is None else int(steps), guidance_scale=guidance,
                   source_guidance_scale=source_guidance, sampler=sampler, progress=True)
        seconds = time.perf_counter() - t0
        wavs, pngs = self.save(out, instruction, pipe.mel_cfg.sample_rate)
        command = [*EDIT, "--checkpoint_path", editor, "--audio", Path(init_audio).name, "--instruction", instruction.strip(), "--seed", str(seed)]
        command += (["--sampler", sampler] if sampler else []) + (["--num_steps", str(int(steps))] if steps else [])
        command += ["--guidance_scale", f"{guidance:g}"] if guidance is not None else []
        command += ["--source_guidance_scale", f"{source_guidance:g}"] if source_guidance is not None else []
        info = f"1 edit of {out.seconds:.2f} s in {seconds:.1f} s.\n\nReproduce:\n```\n{shlex.join(command)}\n```"
        return self.results(wavs, pngs, info)

    def edit(self, model, lora, lora_scale, init_audio, mode, prompt, strength, source_caption, spans, duration, cutoff,
             sampler, steps, guidance, seed, num_samples):
        if not init_audio:
            raise UserError("no clip to edit: upload or record one")
        pipe = self.pipeline(model, lora, lora_scale)
        wav = load_audio(init_audio, pipe.mel_cfg.sample_rate)
        args = ["--init_audio", Path(init_audio).name]
        if mode == "audio-to-audio":
            source_prompt = (source_caption or "").strip() or None  # given: invert the clip rather than noise it
            edit = Edit([wav], strength=float(strength), source="the uploaded clip", source_prompt=source_prompt)
            args += ["--strength", f"{float(strength):g}"] + (["--source_prompt", source_prompt] if source_prompt else [])
        elif mode == "inpainting":
            parsed = [parse_span(s) for s in (spans or "").replace(",", " ").split()]
            if not parsed:
                raise UserError("inpainting: give spans as START:END seconds, e.g. 1.0:1.8")
            edit = Edit([wav], inpaint=parsed, source="the uploaded clip")
            args += [a for s in parsed for a in ("--inpaint", f"{s[0]:g}:{s[1]:g}")]
        elif mode == "super-resolution":
            edit = Edit([wav], super_resolution=float(cutoff), source="the uploaded clip")
            args += ["--super_resolution", f"{float(cutoff):g}"]
        else:
            edit = Edit([wav], source="the uploaded clip")
        keep_duration = duration if mode == "continuation" else None
        return self.run(model, lora, lora_scale, prompt, None, keep_duration, sampler, steps, guidance, seed, num_samples, edit, args)


def optional_number(value, name: str) -> float | None:
    """A text field that may be left empty (the model's default) -> float or None."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{name}: {value!r} is not a number (leave it empty for the model's default)") from None


def readable(fn):
    """A UserError (bad request) becomes a message in the page; the app keeps serving."""
    def wrapped(*args, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's progress injection
        try:
            return fn(*args)
        except UserError as err:
            raise gr.Error(str(err)) from None
    wrapped.__name__ = fn.__name__
    return wrapped


def build(root: Path, default: Path | None = None, device: str = "cpu", keep_models: int = 2,
          max_model_gb: float = float("inf")) -> gr.Blocks:
    app = App(root, default, device, keep_models, max_model_gb)
    models = app.choices("audioldm")
    with gr.Blocks(title="TTA toolkit") as page:
        gr.Markdown("# Text to audio\nType what you want to hear. Models: the exports under "
                    f"`{root}` (trained or converted).")
        with gr.Row():
            model = gr.Dropdown(models, value=models[0][1] if models else None, label="Model", elem_id="model", scale=3, allow_custom_value=True)
            lora = gr.Dropdown([("none", "")] + app.choices("lora"), value="", label="LoRA adapter", elem_id="lora", scale=2, allow_custom_value=True)
            lora_scale = gr.Slider(0, 2, value=1.0, step=0.05, label="LoRA strength", scale=1)
            refresh = gr.Button("Refresh list", scale=0)
        with gr.Row():
            sampler = gr.Dropdown([DEFAULT, *SAMPLER_NAMES], value=DEFAULT, label="Sampler")
            steps = gr.Textbox(label="Steps", placeholder="the model's default", elem_id="steps")
            guidance = gr.Textbox(label="Guidance scale", placeholder="the model's default", elem_id="guidance")
            seed = gr.Number(0, precision=0, label="Seed")
            num_samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples")
        with gr.Tab("Generate"):
            prompt = gr.Textbox(label="Prompt", placeholder="A dog barks while a car passes by", elem_id="prompt")
            negative = gr.Textbox(label="Negative prompt (optional)")
            duration = gr.Textbox(label="Duration in seconds", placeholder="the training length", elem_id="duration")
            go = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Tab("Edit"):
            init_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip to edit")
            mode = gr.Radio(list(EDIT_MODES), value="audio-to-audio", label="Edit")
            edit_prompt = gr.Textbox(label="Prompt", elem_id="edit_prompt")
            with gr.Row():
                strength = gr.Slider(0.05, 1, value=0.5, step=0.05, label="Strength (audio-to-audio)")
                source_caption = gr.Textbox(label="Caption of the clip (audio-to-audio, optional: inverts the clip, keeps more of it)",
                                            elem_id="source_caption")
                spans = gr.Textbox(label="Spans to regenerate (inpainting), e.g. 1.0:1.8 3:3.5")
                edit_duration = gr.Number(10.0, label="Length to continue to (s)")
                cutoff = gr.Number(4000, label="Cutoff Hz (super-resolution)")
            go_edit = gr.Button("Edit", variant="primary", elem_id="edit")
        with gr.Tab("Instruct (AUDIT)"):
            editors = app.choices("audit")
            editor = gr.Dropdown(editors, value=editors[0][1] if editors else None, label="Editor (an AUDIT export)",
                                 elem_id="editor", allow_custom_value=True)
            instruct_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Clip to edit")
            instruction = gr.Textbox(label="Instruction", placeholder="Add a dog barking", elem_id="instruction")
            source_guidance = gr.Textbox(label="Source guidance scale (how closely to keep the clip)", placeholder="the editor's default")
            go_instruct = gr.Button("Edit by instruction", variant="primary", elem_id="instruct")
        players = [gr.Audio(label=f"Sample {i + 1}", type="filepath", visible=i == 0, elem_id=f"sample{i}") for i in range(MAX_SAMPLES)]
        mels = gr.Gallery(label="Mel spectrograms", columns=MAX_SAMPLES, height=300, object_fit="contain")
        files = gr.File(label="Download", file_count="multiple")
        info = gr.Markdown(elem_id="info")
        outputs = [*players, mels, files, info]
        shared = [model, lora, lora_scale]
        go.click(readable(app.run), [*shared, prompt, negative, duration, sampler, steps, guidance, seed, num_samples], outputs,
                 api_name="generate")
        go_edit.click(readable(app.edit), [*shared, init_audio, mode, edit_prompt, strength, source_caption, spans, edit_duration, cutoff, sampler,
                                           steps, guidance, seed, num_samples], outputs, api_name="edit")
        go_instruct.click(readable(app.instruct), [editor, instruct_audio, instruction, sampler, steps, guidance, source_guidance, seed],
                          outputs, api_name="instruct")
        refresh.click(lambda: (gr.update(choices=app.choices("audioldm")), gr.update(choices=[("none", "")] + app.choices("lora")),
                               gr.update(choices=app.choices("audit"))), None, [model, lora, editor], api_name=False)
    return page.queue()
