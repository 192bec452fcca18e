"""Tiny bootstrap shared by the fixture scripts.

`ensure()` creates /work/main/.venv-scripts (i.e. <repo>/.venv-scripts) with the
pinned packages from scripts/requirements.txt if it is missing or stale, and
re-executes the calling script inside it.  Call it before importing numpy etc.
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
VENV = ROOT / ".venv-scripts"
REQS = SCRIPTS / "requirements.txt"
STAMP = VENV / ".requirements.sha256"


def _in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def ensure() -> None:
    py = VENV / "bin" / "python"
    want = hashlib.sha256(REQS.read_bytes()).hexdigest()
    have = STAMP.read_text().strip() if STAMP.exists() else ""
    if not py.exists() or have != want:
        if not py.exists():
            subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "-r", str(REQS)])
        STAMP.write_text(want + "\n")
    if not _in_venv():
        script = os.path.abspath(sys.argv[0])
        os.execv(str(py), [str(py), script, *sys.argv[1:]])
