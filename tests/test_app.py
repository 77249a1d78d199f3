"""The web app in a real headless browser (Debian's Chromium, which tools/run_tests.sh installs) and through
gradio_client, serving two copies of the tiny trained model. Screenshots land in exp/test_artifacts/."""

import io
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # this machine has no network: no background requests
ARTIFACTS = REPO / "exp" / "test_artifacts"


def start_app(root: Path, tmp: Path | None = None) -> tuple[subprocess.Popen, str]:
    """bins/tta/webapp.py serving the exports under `root` (its temp files under `tmp`), once its page answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", **({"TMPDIR": str(tmp)} if tmp else {})}
    proc = subprocess.Popen([sys.executable, "bins/tta/webapp.py", "--experiments_root", str(root), "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.25)
    return proc, url


@pytest.fixture(scope="module")
def server(tiny_ldm, tmp_path_factory):
    """The app on two copies of the tiny model. Stopped by SIGTERM (as a service manager stops it), it must exit
    cleanly and take its tta_app_* folder of results with it: every run used to leave one in the temp folder."""
    root, tmp = tmp_path_factory.mktemp("app_models"), tmp_path_factory.mktemp("app_tmp")
    for name in ("tiny_a", "tiny_b"):
        shutil.copytree(tiny_ldm, root / name)
    proc, url = start_app(root, tmp)
    assert len(list(tmp.glob("tta_app_*"))) == 1
    yield url
    proc.terminate()
    assert proc.wait(timeout=20) == 0
    assert not list(tmp.glob("tta_app_*"))


def fetch_wav(page, selector: str):
    """Downloads the sample a link points at over a fresh connection: Playwright's request context reuses a pooled
    one, which uvicorn closes after 5 s idle, and a request racing that close fails with ECONNRESET (a browser
    retries it; the request context does not)."""
    href = urllib.parse.urljoin(page.url, page.get_attribute(f"{selector} a[download]", "href"))
    with urllib.request.urlopen(href, timeout=30) as response:
        return sf.read(io.BytesIO(response.read()))


def test_generate_switch_models_and_recover_from_an_error_in_a_browser(server):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium missing: tools/run_tests.sh installs it (apt)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(server)
        page.fill("#prompt textarea", "A bell rings twice")
        page.fill("#steps textarea", "2")
        page.click("#generate")
        page.wait_for_selector("#sample0 a[download]", timeout=60_000)
        wav, sr = fetch_wav(page, "#sample0")
        assert sr == 16000 and len(wav) == 128 * 160 and abs(wav).max() > 1e-3
        page.screenshot(path=str(ARTIFACTS / "app_generate.png"), full_page=True)

        page.click("#model input")
        page.get_by_role("option", name="tiny_b").click()
        page.fill("#prompt textarea", "")
        page.click("#generate")
        page.get_by_text("empty prompt: type what the sound should be").first.wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "app_error.png"), full_page=True)

        page.fill("#prompt textarea", "Wind blows")
        page.click("#generate")
        page.wait_for_function("document.querySelector('#info').innerText.includes('tiny_b')", timeout=60_000)
        assert "--text 'Wind blows'" in page.inner_text("#info")
        wav, _ = fetch_wav(page, "#sample0")
        assert len(wav) == 128 * 160 and abs(wav).max() > 1e-3
        browser.close()


def test_gradio_client_calls_the_api(server, tiny_ldm):
    from gradio_client import Client

    client = Client(server, verbose=False)
    *players, mels, files, info = client.predict(str(tiny_ldm), "", 1.0, "A drum is hit", "", "0.64", "ddim", "2", "", 3, 2,
                                                 api_name="/generate")
    assert len(files) == 2 and "--duration 0.64" in info and "--sampler ddim" in info
    wav, sr = sf.read(files[0])
    assert len(wav) == 64 * 160 and abs(wav).max() > 1e-3
    from gradio_client import handle_file

    *players, mels, files, info = client.predict(str(tiny_ldm), "", 1.0, handle_file(files[0]), "audio-to-audio", "A bell rings",
                                                 0.8, "A drum is hit", "", 10, 4000, "model's default", "2", "", 0, 1, api_name="/edit")
    assert len(files) == 1 and "--strength 0.8 --source_prompt 'A drum is hit'" in info  # the inversion path, reproducible
    assert len(sf.read(files[0])[0]) == 64 * 160


def test_results_older_than_a_day_are_removed_as_new_ones_are_made(tiny_ldm, tmp_path):
    """Every request's clips stayed in the results folder for as long as the app ran."""
    import os

    from app.ui import KEEP_RESULTS_S, App

    app = App(tmp_path, tiny_ldm, "cpu", keep_models=1, max_model_gb=4)
    request = [str(tiny_ldm), "", 1.0, "A bell rings", "", "", "model's default", "1", "", 0, 1]
    first = Path(app.run(*request)[-2][0]).parent
    day_old = time.time() - KEEP_RESULTS_S - 60
    os.utime(first, (day_old, day_old))
    second = Path(app.run(*request)[-2][0]).parent
    assert not first.exists() and second.exists() and second.parent == first.parent


def test_loaded_models_stay_within_the_count_and_memory_limits(tiny_ldm, tmp_path):
    from app.models import LoadedModels, find_models, pipeline_bytes

    for name in ("a", "b", "c"):
        shutil.copytree(tiny_ldm, tmp_path / name)
    assert {e.path.name for e in find_models(tmp_path)} == {"a", "b", "c"}
    cache = LoadedModels(keep=2)
    first = cache.get(tmp_path / "a")
    assert cache.get(tmp_path / "a") is first  # kept: no reload
    cache.get(tmp_path / "b"), cache.get(tmp_path / "c")
    assert [k[0] for k in cache.loaded] == [str(tmp_path / "b"), str(tmp_path / "c")]
    small = LoadedModels(keep=5, max_bytes=1.5 * pipeline_bytes(first))  # less than two models: only the one in use stays
    for name in ("a", "b", "c"):
        small.get(tmp_path / name)
    assert [k[0] for k in small.loaded] == [str(tmp_path / "c")]


def test_a_broken_export_is_left_out_of_the_list_not_the_whole_list(tiny_ldm, tmp_path, caplog):
    """A half-written or hand-edited artifact json used to raise on every listing: the page offered nothing."""
    from app.models import find_models

    shutil.copytree(tiny_ldm, tmp_path / "good")
    shutil.copytree(tiny_ldm, tmp_path / "broken")
    (tmp_path / "broken" / "export" / "tta_artifact.json").write_text('{"stage": "audi')
    assert [e.path.name for e in find_models(tmp_path)] == ["good"]
    assert f"not offered: {tmp_path / 'broken' / 'export' / 'tta_artifact.json'} is unreadable" in caplog.text
