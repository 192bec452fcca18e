"""Tiny bootstrap shared by the fixture scripts.

`ensure()` creates /work/main/.venv-scripts (i.e. <repo>/.venv-scripts) with the
pinned packages from scripts/requirements.txt if it is missing or stale, and
re-executes the calling script inside it.  Call it before importing numpy etc.

A script whose pins conflict with requirements.txt can ask for its own venv:
`ensure(venv=".venv-panoptica", requirements="requirements-panoptica.txt")`
(venv relative to the repository root, requirements relative to scripts/).
The defaults keep the behaviour of the plain `ensure()` call.
LESIONEVAL_NO_VENV=1 skips the venv (machines without PyPI that have the packages).

Every requirements file was resolved on CPython 3.11 (numpy 1.24.3 of the BraTS pins has no
wheel for 3.12, numpy 2.4.6 needs 3.11 or newer), so the venv is made with a 3.11 interpreter:
this one if it is 3.11, else `python3.11` from PATH, else LESIONEVAL_PYTHON. A venv whose
requirements file changed is made anew, so no package dropped from the file stays installed.
"""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTHON = (3, 11)

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
VENV = ROOT / ".venv-scripts"
REQS = SCRIPTS / "requirements.txt"
STAMP = VENV / ".requirements.sha256"


def _in_venv(venv: Path) -> bool:
    try:
        return Path(sys.prefix).resolve() == venv.resolve()
    except OSError:
        return False


def ensure(venv: str = ".venv-scripts", requirements: str = "requirements.txt") -> None:
    # On machines that cannot reach PyPI but already have the packages (the GPU
    # device runs), LESIONEVAL_NO_VENV=1 runs the script with the current python.
    if os.environ.get("LESIONEVAL_NO_VENV") == "1":
        return
    venv_dir = ROOT / venv
    reqs = SCRIPTS / requirements
    stamp = venv_dir / ".requirements.sha256"
    py = venv_dir / "bin" / "python"
    want = hashlib.sha256(reqs.read_bytes()).hexdigest()
    have = stamp.read_text().strip() if stamp.exists() else ""
    if not py.exists() or have != want:
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        subprocess.check_call([_interpreter(), "-m", "venv", str(venv_dir)])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "-r", str(reqs)])
        stamp.write_text(want + "\n")
    if not _in_venv(venv_dir):
        script = os.path.abspath(sys.argv[0])
        os.execv(str(py), [str(py), script, *sys.argv[1:]])


def _interpreter() -> str:
    """A CPython 3.11 to make the venv with (see the module docstring)."""
    if sys.version_info[:2] == PYTHON:
        return sys.executable
    for candidate in [os.environ.get("LESIONEVAL_PYTHON"), shutil.which("python3.11")]:
        if candidate:
            return candidate
    sys.exit(
        "scripts: the pinned packages were resolved for CPython 3.11 and this is "
        f"{sys.version_info.major}.{sys.version_info.minor}; install python3.11 "
        "or point LESIONEVAL_PYTHON at one"
    )
