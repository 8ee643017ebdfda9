"""A normal (non-editable) install, used as a new user would: from an empty
directory, with nothing of the repository at hand.

The wheel is built from a copy of the checkout with this environment's build tools
(no network), installed into a fresh venv without its dependencies, which come
from this environment's site-packages through a ``.pth`` line (a plain path: the
editable install's own ``.pth`` there is not processed, so ``sephb`` itself can
only come from the wheel; the test checks that it does)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What a copy of the checkout leaves out: environments, build output, history.
SKIP = shutil.ignore_patterns(".venv", "build", "out", ".git", "*.egg-info",
                              "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a fresh venv with sephb installed from a wheel."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
                   check=True, capture_output=True, timeout=300)
    wheel = next((tmp / "dist").glob("sephb-*.whl"))
    venv = tmp / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site / "sephb-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return venv / "bin"


def _run(bin_: Path, cwd: Path, *args: str, timeout: float = 120
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEPHB_SEED", "PYTHONPATH")}
    return subprocess.run([str(bin_ / "sephb"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_normal_install_works_from_an_empty_directory(installed: Path,
                                                        tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c",
                            "import sephb.model; print(sephb.model.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(installed.parent)), where.stdout  # the wheel's

    version = _run(installed, tmp_path, "--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout

    ex = _run(installed, tmp_path, "examples", "ex")
    assert ex.returncode == 0, ex.stderr
    for name in ("managers.toml", "sylink-pull.xml", "sylink-push.xml", "reference.har"):
        assert (tmp_path / "ex" / name).is_file(), name

    # The example site and the reference client against it.
    manager = subprocess.Popen(
        [str(installed / "sephb"), "manager", "--config", "ex/managers.toml",
         "--time-scale", "0.001"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_control(manager)
        client = _run(installed, tmp_path, "client", "--sylink", "ex/sylink-pull.xml",
                      "--state-dir", "state", "--time-scale", "0.001",
                      "--heartbeats", "2", "--trace", "client.ndjson", timeout=60)
        assert client.returncode == 0, client.stderr
    finally:
        os.killpg(manager.pid, signal.SIGTERM)
        manager.wait(timeout=30)
    checked = _run(installed, tmp_path, "validate", "client.ndjson",
                   "--sylink", "ex/sylink-pull.xml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    review = _run(installed, tmp_path, "review")
    assert review.returncode == 0, review.stderr
    assert "ENCODED+CHECKED" in review.stdout and "UNTESTED" not in review.stdout
    assert "needs the project's repository" in review.stderr

    conform = _run(installed, tmp_path, "conform", "--max-examples", "5", timeout=600)
    assert conform.returncode == 0 and conform.stdout.startswith("CONFORMANT"), \
        conform.stdout[-2000:] + conform.stderr[-2000:]

    har = _run(installed, tmp_path, "validate", "ex/reference.har")
    assert har.returncode == 0, har.stdout + har.stderr

    # The pytest plugin, through the wheel's pytest11 entry point: a project's own
    # test run judges the reference client too.
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    plugin = subprocess.run(
        [str(installed / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--sephb-client", "reference", "--sephb-report", "report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert plugin.returncode == 0, plugin.stdout[-2000:] + plugin.stderr[-2000:]
    assert (tmp_path / "report" / "junit.xml").is_file()
    loaded = subprocess.run(
        [str(installed / "python"), "-c",
         "import sephb.conformance.pytest_plugin as p; print(p.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True)
    assert loaded.stdout.startswith(str(installed.parent)), loaded.stdout  # the wheel's


def _wait_for_control(manager: subprocess.Popen[str], timeout_s: float = 30) -> None:
    """Until the example site's control API answers (it starts last)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if manager.poll() is not None:
            raise AssertionError(f"sephb manager exited: {manager.stderr.read()}"
                                 if manager.stderr else "sephb manager exited")
        try:
            with urllib.request.urlopen("http://127.0.0.1:8015/control/state",
                                        timeout=1) as r:
                json.load(r)
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the example site's control API never answered")
