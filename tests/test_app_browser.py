"""The web app as a person uses it: `python -m toolkit.bin.app` started as its own process, driven in Debian's
headless Chromium (chromium + chromium-driver; nothing downloads a browser). Types an LRC, generates with a tiny
checkpoint, waits for the player, and checks that the file it serves decodes to audio of the requested length that
is not silent; then a bad timestamp and its message. The page asks nothing of any other host."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_generate_fixtures import make_checkpoint

from toolkit.app.browser import chromium, field, off_machine, requests_made, served_file, type_into, wait_for
from toolkit.app.server import free_port

pytestmark = pytest.mark.e2e  # a server in a subprocess and a browser (left out of make test-fast)
REPO = Path(__file__).resolve().parents[1]
TAB = "diffrhythm_main"
SECONDS = 1.2


@pytest.fixture
def server(tmp_path):
    ckpt = make_checkpoint(tmp_path / "song.pt")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.bin.app", "--ckpt", str(ckpt), "--port", str(port),
                             "--out", str(tmp_path / "out")], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise AssertionError("the app did not start:\n" + (tmp_path / "server.log").read_text()) from None
            time.sleep(0.5)
    yield url, tmp_path
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def status(driver) -> str:
    return driver.find_element("id", f"{TAB}-status").text


def test_type_generate_listen_and_a_bad_timestamp(server):
    url, root = server
    started = time.perf_counter()
    with chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: field(d, f"{TAB}-lrc"))
        type_into(driver, f"{TAB}-lrc", "[00:00.05]hello world\n[00:00.50]sing along now")
        type_into(driver, f"{TAB}-style_text", "folk, acoustic guitar")
        type_into(driver, f"{TAB}-length", str(SECONDS))
        wait_for(driver, lambda d: "Ready to generate" in status(d))
        driver.find_element("id", f"{TAB}-generate").click()
        href = wait_for(driver, lambda d: served_file(d, f"{TAB}-audio-0"), 90)
        # the player drew the file it decoded: its duration shows as 0:01
        wait_for(driver, lambda d: "0:01" in d.find_element("id", f"{TAB}-audio-0").text)
        assert "1 output(s)" in status(driver)
        wav, sr = sf.read(io.BytesIO(urllib.request.urlopen(href, timeout=30).read()))
        assert abs(len(wav) / sr - SECONDS) < 0.02
        assert float(np.sqrt(np.mean(np.square(wav)))) > 1e-3  # not silent
        assert list((root / "out").rglob("song.json"))  # the manifest beside it

        type_into(driver, f"{TAB}-lrc", "[00:00.05]hello world\n[00:7x.00]a typo")
        wait_for(driver, lambda d: "malformed timestamp [00:7x.00]" in status(d))
        lines = driver.find_element("id", f"{TAB}-lrc-lines").text
        assert "not read" in lines and "malformed timestamp" in lines
        assert off_machine(requests_made(driver)) == []
    assert time.perf_counter() - started < 120
