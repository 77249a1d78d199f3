import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from bins.tta.preprocess import main
from conftest import AUDIOCAPS_TABLES, REPO, TINY_AUDIO
from models.tta.data import MelDataset
from preprocessors.audiocaps import candidate_names
from utils.errors import UserError
from utils.mel import MelConfig

SETS = [f"--set={s}" for s in TINY_AUDIO + ["preprocess.num_workers=1"]]
TINY = MelConfig(segment_seconds=1.28, target_frames=128)


def tone(seconds=1.0, sr=22050, freq=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.4 * np.sin(2 * np.pi * freq * t)
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


@pytest.fixture()
def audiocaps_raw(tmp_path):
    """Stand-in clips named after the first real rows of val.csv: three naming schemes, one missing, one corrupt."""
    with (AUDIOCAPS_TABLES / "val.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    clips = []
    for row in rows:
        if row["youtube_id"] not in [c["youtube_id"] for c in clips]:
            clips.append(row)
        if len(clips) == 5:
            break
    raw = tmp_path / "raw"
    (raw / "audio").mkdir(parents=True)
    keys = {(c["youtube_id"], c["start_time"]) for c in clips}
    kept = [r for r in rows if (r["youtube_id"], r["start_time"]) in keys]
    with (raw / "val.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["audiocap_id", "youtube_id", "start_time", "caption"])
        w.writeheader()
        w.writerows(kept)
    names = [candidate_names(c) for c in clips]
    sf.write(raw / "audio" / f"{names[0][0]}.wav", tone(channels=2), 22050)  # {ytid}_{start}_{end}.wav, stereo 22 kHz
    sf.write(raw / "audio" / f"{names[1][1]}.wav", tone(freq=300), 16000)  # Y{ytid}.wav
    sf.write(raw / "audio" / f"{names[2][2]}.flac", tone(freq=900), 44100)  # {audiocap_id}.flac
    (raw / "audio" / f"{names[3][0]}.wav").write_bytes(b"RIFF not really a wave file")  # corrupt
    # names[4]: missing on disk
    return raw, clips, kept


def test_audiocaps_preparation(audiocaps_raw, tmp_path, capsys):
    raw, clips, kept = audiocaps_raw
    out = tmp_path / "processed"
    assert main(["--dataset", "AudioCaps", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS]) == 0
    printed = capsys.readouterr().out
    assert "3 prepared" in printed and "1 skipped" in printed and "1 missing on disk" in printed
    root = out / "AudioCaps"
    valid = json.loads((root / "valid.json").read_text())
    uids = {candidate_names(c)[0] for c in clips[:3]}
    assert {r["Uid"] for r in valid} == uids
    n_captions = sum(1 for r in kept if candidate_names(r)[0] in uids)
    assert len(valid) == n_captions >= 3 * 5  # one row per caption, all captions kept
    assert set(valid[0]) == {"Dataset", "Uid", "Caption"} and valid[0]["Dataset"] == "AudioCaps"
    assert json.loads((root / "train.json").read_text()) == []
    for uid in uids:
        mel = np.load(root / "mel" / f"{uid}.npy")
        assert mel.shape == (64, 128) and mel.dtype == np.float32
        info = sf.info(root / "wav" / f"{uid}.wav")
        assert info.samplerate == 16000 and info.channels == 1 and info.frames == TINY.segment_samples
    assert not list(root.rglob(".*tmp")) and not list(root.rglob(".*.npy"))

    # re-run: nothing re-prepared, files untouched
    before = {p: p.stat().st_mtime_ns for p in (root / "mel").glob("*.npy")}
    assert main(["--dataset", "AudioCaps", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS]) == 0
    assert "0 prepared, 3 already prepared" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in (root / "mel").glob("*.npy")}

    # other audio settings against the same cache: a clear error, nothing overwritten
    with pytest.raises(UserError, match=r"prepared with other audio settings \(audio\.n_mels: 64 there, 80 here\); "):
        main(["--dataset", "AudioCaps", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS, "--set=audio.n_mels=80"])
    assert before == {p: p.stat().st_mtime_ns for p in (root / "mel").glob("*.npy")}

    ds = MelDataset(out, ["AudioCaps"], "valid", TINY)
    assert len(ds) == n_captions and ds[0]["mel"].shape == (64, 128)


def test_own_folder_preparation(tmp_path):
    raw = tmp_path / "my_sounds"
    raw.mkdir()
    rows = []
    for i in range(12):
        name = f"clip {i}.{'flac' if i % 2 else 'wav'}"
        sf.write(raw / name, tone(freq=200 + 50 * i, sr=16000), 16000)
        rows.append({"file": name, "caption": f"A tone, number {i}, says “hi”", "label": "loud" if i < 3 else ""})
    rows.append({"file": "absent.wav", "caption": "missing", "label": ""})
    with (raw / "metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "caption", "label"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    assert main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS]) == 0
    splits = {s: json.loads((out / "my_sounds" / f"{s}.json").read_text()) for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [10, 1, 1]
    assert splits["train"][0]["Dataset"] == "my_sounds" and "“hi”" in splits["train"][0]["Caption"]
    # other columns are kept as attributes where given (data.balance_by reads them)
    every = [row for rows_ in splits.values() for row in rows_]
    assert sorted(row.get("Attributes", {}).get("label", "") for row in every) == [""] * 9 + ["loud"] * 3
    # the same seed gives the same split
    out2 = tmp_path / "out2"
    assert main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(out2), *SETS]) == 0
    assert json.loads((out2 / "my_sounds" / "test.json").read_text()) == splits["test"]


def test_own_folder_spreadsheet_csv_look_alike_names_and_empty_captions(tmp_path):
    """A metadata.csv with a byte-order mark is read; 'a b.wav' and 'a_b.wav' stay two clips with their own
    captions; a row with an empty caption is skipped and reported, not trained on."""
    raw = tmp_path / "sheet"
    raw.mkdir()
    for i, name in enumerate(["a b.wav", "a_b.wav", "c.wav", "d.wav", "e.wav"]):
        sf.write(raw / name, tone(freq=300 + 100 * i, sr=16000), 16000)
    text = "file,caption\na b.wav,A bird sings\na_b.wav,A dog barks\nc.wav,\nc.wav,A car passes\nd.wav,Rain\ne.wav,  \n"
    (raw / "metadata.csv").write_text("\ufeff" + text, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS]) == 0
    rows = [r for s in ("train", "valid", "test") for r in json.loads((out / "sheet" / f"{s}.json").read_text())]
    captions = {r["Caption"]: r["Uid"] for r in rows}
    assert set(captions) == {"A bird sings", "A dog barks", "A car passes", "Rain"}
    assert captions["A bird sings"] != captions["A dog barks"] and captions["A dog barks"] == "a_b"
    assert all(r["Caption"].strip() for r in rows) and not any(r["Uid"] == "e" for r in rows)


def test_own_folder_rows_cut_short_or_not_text_are_skipped_and_named(tmp_path, caplog):
    """An unquoted comma in a caption used to cut the caption short without a word, and a file name that is not
    text (metadata.jsonl) ended in a TypeError traceback; each such row is now skipped and named by its line."""
    raw = tmp_path / "mine"
    raw.mkdir()
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        sf.write(raw / name, tone(sr=16000), 16000)
    (raw / "metadata.csv").write_text('file,caption\na.wav,A dog barks, then a car passes\nb.wav,"Rain, then thunder"\n'
                                      "c.wav\nd.wav,Wind\n")
    out = tmp_path / "out"
    assert main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(out), *SETS]) == 0
    captions = sorted(r["Caption"] for s in ("train", "valid", "test") for r in json.loads((out / "mine" / f"{s}.json").read_text()))
    assert captions == ["Rain, then thunder", "Wind"]
    assert f"{raw / 'metadata.csv'}:2: more fields than the header" in caplog.text
    assert f"{raw / 'metadata.csv'}:4: 'caption' is empty" in caplog.text
    (raw / "metadata.csv").unlink()
    (raw / "metadata.jsonl").write_text('{"file": 3, "caption": "x"}\n{"file": "a.wav", "caption": ["x"]}\n'
                                        '{"file": "b.wav", "caption": "Rain"}\n{"file": "d.wav", "caption": "Wind"}\n'
                                        '{"file": "c.wav", "caption": "Hum"}\n')
    assert main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(tmp_path / "out2"), *SETS]) == 0
    assert f"{raw / 'metadata.jsonl'}:1: 'file' is 3, not text" in caplog.text
    assert f"{raw / 'metadata.jsonl'}:2: 'caption' is ['x'], not text" in caplog.text


def test_metadata_in_another_encoding_is_one_line_and_nothing_is_written(tmp_path):
    """A metadata.csv saved as Latin-1 raised UnicodeDecodeError from inside csv."""
    raw = tmp_path / "mine"
    raw.mkdir()
    sf.write(raw / "a.wav", tone(sr=16000), 16000)
    (raw / "metadata.csv").write_bytes("file,caption\na.wav,A caf\xe9 at noon\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"metadata.csv is not UTF-8 text \(byte 24: invalid continuation byte\); save it as UTF-8"):
        main(["--dataset", "folder", "--raw_dir", str(raw), "--processed_dir", str(tmp_path / "out"), *SETS])
    assert not list((tmp_path / "out").rglob("*.npy"))


def test_synthcaps_layout(tiny_synthcaps):
    root = tiny_synthcaps / "SynthCaps"
    rows = {s: json.loads((root / f"{s}.json").read_text()) for s in ("train", "valid", "test")}
    assert sum(map(len, rows.values())) == 48 and all(rows.values())
    row = rows["train"][0]
    assert set(row["Attributes"]) == {"sound_type", "pitch", "pattern"}
    assert np.load(root / "mel" / f"{row['Uid']}.npy").shape == (64, 128)


def test_preparing_in_process_leaves_the_callers_thread_count(tmp_path):
    """One worker prepares in the calling process; it used to set that process to one torch thread for good, so
    training or benchmarking after it in the same process ran on one core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["--dataset", "SynthCaps", *SETS, "--set=preprocess.synthcaps_clips=8", "--processed_dir", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_synthcaps_of_another_generator_version_is_not_reused(tmp_path, monkeypatch):
    from preprocessors import synthcaps

    sets = [*SETS, "--set=preprocess.synthcaps_clips=8", "--processed_dir", str(tmp_path)]
    assert main(["--dataset", "SynthCaps", *sets]) == 0
    mels = sorted((tmp_path / "SynthCaps" / "mel").glob("*.npy"))
    before = {p: p.stat().st_mtime_ns for p in mels}
    monkeypatch.setattr(synthcaps, "GENERATOR", "SynthCaps v999")
    with pytest.raises(UserError, match=r"holds audio from SynthCaps v2 .*, not SynthCaps v999; re-run with --overwrite"):
        main(["--dataset", "SynthCaps", *sets])
    assert before == {p: p.stat().st_mtime_ns for p in mels}
    assert main(["--dataset", "SynthCaps", *sets, "--overwrite"]) == 0
    stamp = json.loads((tmp_path / "SynthCaps" / "mel" / "mel_config.json").read_text())
    assert stamp["generator"] == "SynthCaps v999"
    assert before != {p: p.stat().st_mtime_ns for p in mels}


def test_an_interrupted_overwrite_is_neither_used_nor_silently_resumed(tmp_path, monkeypatch):
    """The stamp says `complete` only after the last clip: a dataset whose (re-)preparation stopped midway is
    refused, and after an interrupted --overwrite a plain re-run cannot keep the old clips."""
    from preprocessors import prepare

    sets = [*SETS, "--set=preprocess.synthcaps_clips=8", "--set=preprocess.num_workers=1", "--processed_dir", str(tmp_path)]
    assert main(["--dataset", "SynthCaps", *sets]) == 0
    real, calls = prepare._process, []

    def interrupted(clip):
        calls.append(clip)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(clip)

    monkeypatch.setattr(prepare, "_process", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["--dataset", "SynthCaps", *sets, "--overwrite"])
    monkeypatch.setattr(prepare, "_process", real)
    with pytest.raises(UserError, match="did not finish"):
        MelDataset(tmp_path, ["SynthCaps"], "train", MelConfig(**json.loads((tmp_path / "SynthCaps" / "mel" / "mel_config.json").read_text())["audio"]))
    with pytest.raises(UserError, match="--overwrite preparation of .* was interrupted"):
        main(["--dataset", "SynthCaps", *sets])
    assert main(["--dataset", "SynthCaps", *sets, "--overwrite"]) == 0
    stamp = json.loads((tmp_path / "SynthCaps" / "mel" / "mel_config.json").read_text())
    assert stamp["complete"] is True and stamp["overwriting"] is False


def test_dataset_errors(tiny_synthcaps, tmp_path):
    with pytest.raises(UserError, match="run_prepare.sh --dataset Nope"):
        MelDataset(tiny_synthcaps, ["Nope"], "train", TINY)
    with pytest.raises(UserError, match=r"other audio settings \(audio\.segment_seconds: 1\.28 there, 10\.24 here; "
                                         r"audio\.target_frames: 128 there, 1024 here\); "):  # only what differs is named
        MelDataset(tiny_synthcaps, ["SynthCaps"], "train", MelConfig())
    ds = MelDataset(tiny_synthcaps, ["SynthCaps"], "train", TINY, crop_frames=64, seed=3)
    assert ds[0]["mel"].shape == (64, 64)
    assert np.array_equal(ds[len(ds)]["mel"], ds[len(ds)]["mel"])  # crop is a function of (seed, epoch, index)
    ds.mel_paths[0] = tmp_path / "gone.npy"
    with pytest.raises(UserError, match="gone.npy is missing"):
        ds[0]


def test_balance_by_repeats_rows_of_rare_values(tiny_synthcaps, tmp_path):
    """data.balance_by lists each row round(commonest / its count) times, in place; a row without the attribute
    is a one-line error naming the file and the key."""
    import collections

    rows = json.loads((tiny_synthcaps / "SynthCaps" / "train.json").read_text())
    counts = collections.Counter(r["Attributes"]["sound_type"] for r in rows)
    assert max(counts.values()) >= 2 * min(counts.values())  # the corpus is unbalanced by type (bells, drums)
    ds = MelDataset(tiny_synthcaps, ["SynthCaps"], "train", TINY, balance_by="sound_type")
    want = [r for r in rows for _ in range(max(1, round(max(counts.values()) / counts[r["Attributes"]["sound_type"]])))]
    assert ds.rows == want and [p.stem for p in ds.mel_paths] == [r["Uid"] for r in want]
    seen = collections.Counter(r["Attributes"]["sound_type"] for r in ds.rows)
    assert max(seen.values()) / min(seen.values()) < max(counts.values()) / min(counts.values())
    broken = tmp_path / "SynthCaps"
    broken.mkdir()
    (broken / "mel").symlink_to(tiny_synthcaps / "SynthCaps" / "mel")
    (broken / "train.json").write_text(json.dumps(rows[:3] + [{k: v for k, v in rows[3].items() if k != "Attributes"}]))
    with pytest.raises(UserError, match=f"train.json: row {rows[3]['Uid']} has no attribute 'sound_type' \\(data.balance_by\\)"):
        MelDataset(tmp_path, ["SynthCaps"], "train", TINY, balance_by="sound_type")


def test_cli_user_errors_are_one_line(tmp_path):
    res = subprocess.run(
        [sys.executable, "bins/tta/preprocess.py", "--dataset", "AudioCaps", "--raw_dir", str(tmp_path / "nowhere")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: --raw_dir {tmp_path / 'nowhere'} is not a folder; point it at the downloaded AudioCaps clips"]
