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
LESIONEVAL_PYTHON if set, else this one if it is 3.11, else `python3.11` from PATH; each is
checked to be 3.11 before anything is removed. A venv whose requirements file or Python
changed is made anew, so no package dropped from the file stays installed.
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
    # The stamp names the Python too: a venv made with another one is remade.
    want = hashlib.sha256(reqs.read_bytes()).hexdigest() + " python%d.%d" % PYTHON
    have = stamp.read_text().strip() if stamp.exists() else ""
    if not py.exists() or have != want:
        interpreter = _interpreter()  # before removing anything: it may exit
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        subprocess.check_call([interpreter, "-m", "venv", str(venv_dir)])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "-r", str(reqs)])
        stamp.write_text(want + "\n")
    if not _in_venv(venv_dir):
        script = os.path.abspath(sys.argv[0])
        os.execv(str(py), [str(py), script, *sys.argv[1:]])


def _version(python: str) -> tuple:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, check=True,
        ).stdout
        return tuple(int(v) for v in out.split())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return ()


def _interpreter() -> str:
    """A CPython 3.11 to make the venv with (see the module docstring); never
    the venv's own python, which is about to be removed."""
    here = getattr(sys, "_base_executable", sys.executable)
    candidates = [os.environ.get("LESIONEVAL_PYTHON"), here, shutil.which("python3.11")]
    for candidate in filter(None, candidates):
        if _version(candidate) == PYTHON:
            return candidate
    sys.exit(
        "scripts: the pinned packages were resolved for CPython 3.11; none of "
        f"{[c for c in candidates if c]} is 3.11: install python3.11 or point LESIONEVAL_PYTHON at one"
    )
