"""report.html: what a person looks at after the demo. Per prompt: caption, mel image, audio player and
scores; plus the metric tables, the VAE reconstruction figure and the training curves."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from utils.errors import UserError  # noqa: E402
from utils.io import read_json, read_jsonl  # noqa: E402
from utils.log import get_logger  # noqa: E402
from utils.plot import mel_figure  # noqa: E402

log = get_logger("report")


def curves_png(exp_dir: Path, out: Path) -> Path | None:
    metrics = exp_dir / "metrics.jsonl"
    if not metrics.exists():
        return None
    try:
        rows = read_jsonl(metrics)
    except UserError as err:  # a training killed mid-line: the report goes on without this curve
        log.warning("training curve left out: %s", err)
        return None
    fig, ax = plt.subplots(figsize=(6, 3))
    for split, style in (("train", "-"), ("valid", "o-")):
        pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split and "loss" in r]
        if pts:
            ax.plot(*zip(*pts), style, label=f"{split} loss")
    ax.set_title(exp_dir.name)
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def vae_figure(vae_exp: Path, reference: Path, out: Path, n: int = 3) -> Path:
    from models.tta.autoencoderkl.model import image_to_mel, load_vae_export, mel_to_image  # diffusers: only for the VAE figure
    from models.tta.data import MelDataset

    vae, mel_cfg, _ = load_vae_export(vae_exp)
    ds = MelDataset(reference.parent.parent, [reference.parent.name], reference.stem, mel_cfg)
    x = torch.stack([ds[i]["mel"] for i in range(min(n, len(ds)))])
    with torch.no_grad():
        rec = image_to_mel(vae.decode(vae.encode(mel_to_image(x)).latent_dist.mode()).sample)
    mels = [m.numpy() for pair in zip(x, rec) for m in pair]
    titles = [f"{k}: {ds.rows[i]['Caption']}" for i in range(len(x)) for k in ("input", "VAE reconstruction")]
    fig = mel_figure(mels, titles)
    fig.savefig(out, dpi=70)
    plt.close(fig)
    return out


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(out_dir: Path, generated: Path, result: dict, vae_exp: Path | None, experiments: list[Path],
                 reference: Path, notes: list[str] | None = None) -> Path:
    """Write out_dir/report.html; media are referenced relative to it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = lambda p: html.escape(str(Path(p).resolve().relative_to(out_dir.resolve())) if Path(p).resolve().is_relative_to(out_dir.resolve()) else str(Path(p).resolve()))  # noqa: E731
    parts = ["<h1>Text-to-audio demo report</h1>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes or []]
    adherence = result.get("text_adherence", {})
    if adherence:
        parts.append("<h2>Text adherence (SynthCaps attribute analyser)</h2>")
        parts.append(_table(
            [[a, f"{v['accuracy']:.1%}", f"{v['chance']:.1%}", f"{v['reference_accuracy']:.1%}"] for a, v in adherence.items()],
            ["attribute", "generated", "chance", "analyser on real audio"],
        ))
    dist = [[k, f"{result[k]:.3f}"] for k in ("frechet_distance", "kl_spectrum") if k in result]
    if dist:
        parts.append(f"<h2>Distribution metrics ({html.escape(result.get('embedding', ''))} embedding)</h2>" + _table(dist, ["metric", "value"]))
    if vae_exp is not None:
        parts.append("<h2>VAE reconstruction</h2>")
        parts.append(f'<img src="{rel(vae_figure(vae_exp, reference, out_dir / "vae_reconstruction.png"))}">')
        eval_json = vae_exp / "export" / f"eval_{reference.stem}.json"
        if eval_json.exists():
            ev = read_json(eval_json)
            parts.append(_table([[k, f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))] for k, v in ev.items()], ["metric", "value"]))
    curves = [c for c in (curves_png(e, out_dir / f"curves_{e.name}.png") for e in experiments) if c]
    if curves:
        parts.append("<h2>Training curves</h2>" + "".join(f'<img src="{rel(c)}">' for c in curves))
    parts.append("<h2>Generated clips</h2>")
    rows = []
    prompts = read_jsonl(generated / "prompts.jsonl")
    scores = {c["wav"]: c for c in result.get("per_clip", [])}
    for p in prompts:
        s = scores.get(p["wav"])
        verdict = ""
        if s:
            verdict = "<br>".join(
                f"{'✓' if s['measured'][a] == s['expected'][a] else '✗'} {a}: {html.escape(s['measured'][a])}"
                + ("" if s["measured"][a] == s["expected"][a] else f" (want {html.escape(s['expected'][a])})")
                for a in s["expected"]
            )
        rows.append([
            html.escape(p["prompt"]), f'<img src="{rel(generated / p["png"])}" width="420">',
            f'<audio controls src="{rel(generated / p["wav"])}"></audio>', verdict,
        ])
    parts.append(_table(rows, ["prompt", "mel", "audio", "measured attributes"]))
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>TTA demo report</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
