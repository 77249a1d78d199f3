import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BINS = sorted(p.name for p in (REPO / "bins" / "tta").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("script", BINS)
def test_every_entry_point_has_help_and_one_line_usage_errors(script):
    res = subprocess.run([sys.executable, "-X", "importtime", f"bins/tta/{script}", "--help"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage:") and len(res.stdout.splitlines()) > 3
    # --help answers at once: torch (seconds to import) comes after parsing
    imported = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "argparse" in imported and "torch" not in imported, f"{script} --help imports torch"
    # an unknown option (or, first, the missing required ones): one line, as a UserError is
    bad = subprocess.run([sys.executable, f"bins/tta/{script}", "--no_such_option"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and not bad.stdout, bad.stdout
    assert bad.stderr.startswith("error:") and len(bad.stderr.splitlines()) == 1 and script in bad.stderr, bad.stderr


@pytest.mark.parametrize("recipe", ["prepare/run_prepare.sh", "autoencoderkl/run_train.sh", "audioldm/run_train.sh", "hifigan/run_train.sh",
                                    "pretrained/run_convert.sh"])
def test_recipes_run_under_sh(recipe):
    res = subprocess.run(["sh", f"egs/tta/{recipe}", "--help"], cwd=REPO, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout
    assert Path(REPO / "egs/tta" / recipe).read_text().startswith("#!/usr/bin/env bash")
