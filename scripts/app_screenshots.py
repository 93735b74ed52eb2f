"""The screenshots of docs/app.md, taken in headless Chromium driving the running app (the browser test's way).

    python scripts/app_screenshots.py                 # -> docs/images/app_*.png
    python scripts/app_screenshots.py --out /tmp/shots --keep /tmp/shots/work

Models: the tests' tiny random checkpoints (a DiffRhythm and an F5-TTS one), so the pictures show the page, not
what a trained model sounds like. The Compare tab opens a small report made here: two variants of the song model
(4 and 16 ODE steps) generating the same two requests through the app's own service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LRC = ("[00:00.05]hello world\n[00:00.40]sing along now\n[00:00.80]the night is young\n"
       "[00:00.60]a line out of order\n[00:01.10]... !!!\n[00:09.00]far after the end\n")


def shrink(path: Path) -> None:
    """A palette PNG (screenshots have few colours): a fraction of the size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def report_folder(service, model, root: Path) -> Path:
    """exp/songs/<variant>/ through the service, then report/ as egs/compare writes it (toolkit.eval.compare)."""
    from toolkit.eval.compare import write_comparison

    exp = root / "compare_exp"
    rows = []
    for steps in (4, 16):
        name = f"euler_{steps}"
        folder = exp / "songs" / name
        folder.mkdir(parents=True, exist_ok=True)
        walls, seconds = [], []
        for i, style in enumerate(("folk, guitar", "jazz, piano")):
            outcome = service.generate(model.label, {"lrc": LRC.split("[00:00.60]")[0], "style_text": style,
                                                     "steps": steps, "seed": 10 + i, "length": 1.5}, "report")
            manifest = json.loads(outcome.items[0].manifest.read_text())
            target = folder / f"request_{i}.wav"
            outcome.items[0].audio.replace(target)
            manifest["audio"] = target.name
            (folder / f"request_{i}.json").write_text(json.dumps(manifest))
            walls.append(manifest["wall_seconds"])
            seconds.append(manifest["seconds"])
        rows.append({"name": name, "recipe": "diffrhythm", "model": "tiny", "steps": steps, "solver": "euler",
                     "nfe": steps, "guidance": 2.0, "count": 2, "seconds": sum(seconds) / 2,
                     "rtf": round(sum(walls) / sum(seconds), 3), "status": "ok"})
    write_comparison({"kind": "compare", "title": "two step counts of a tiny model", "variants": rows},
                     exp / "report", plot_metrics=("rtf",))
    return exp / "report"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "docs" / "images"), help="where the PNGs go")
    p.add_argument("--keep", help="a work folder to keep (default: a temporary one)")
    args = p.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="app-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # the page shows paths as given: short ones
    work = Path(".")

    import torch
    from selenium.webdriver.common.by import By
    from test_f5tts_recipe import speech, tiny_config
    from test_generate_fixtures import make_checkpoint, write_tone

    from toolkit.app.browser import chromium, served_file, type_into, wait_for
    from toolkit.app.served import Settings, serve_checkpoint
    from toolkit.app.server import free_port, launch
    from toolkit.app.service import Service

    settings = Settings(torch.device("cpu"), "fp32", torch.float32)
    song = serve_checkpoint(make_checkpoint(work / "song_tiny.pt"), settings=settings)
    talk = serve_checkpoint(make_checkpoint(work / "speech_tiny.pt", config=tiny_config()), settings=settings)
    service = Service([song, talk], work / "out", settings)
    report = report_folder(service, song, work)
    reference = write_tone(work / "my_song.wav", seconds=1.5).resolve()
    voice = str(Path(speech(work / "my_voice.wav", seconds=1.0)).resolve())
    running = launch(service, port=free_port(), compare_folders=[str(report)], block=False)

    def shot(driver, name: str, element_id: str | None = None) -> None:
        path = out / f"app_{name}.png"
        if element_id:
            driver.find_element(By.ID, element_id).screenshot(str(path))
        else:
            driver.save_screenshot(str(path))
        shrink(path)
        print(f"{path} ({path.stat().st_size // 1024} KB)")

    def status(driver, tab: str) -> str:
        return driver.find_element(By.ID, f"{tab}-status").text

    try:
        with chromium(width=1280, height=1500) as d:
            d.get(running.url)
            tab = "diffrhythm_main"
            wait_for(d, lambda d: d.find_element(By.ID, f"{tab}-lrc"))
            type_into(d, f"{tab}-lrc", LRC)
            type_into(d, f"{tab}-style_text", "folk, acoustic guitar, harmonica")
            type_into(d, f"{tab}-length", "1.5")
            type_into(d, f"{tab}-batch", "2")
            wait_for(d, lambda d: "Ready" in status(d, tab))
            d.find_element(By.ID, f"{tab}-generate").click()
            wait_for(d, lambda d: served_file(d, f"{tab}-audio-1"), 120)
            time.sleep(1.5)
            d.execute_script("window.scrollTo(0, 0)")
            shot(d, "song")
            d.execute_script("document.getElementById(arguments[0]).scrollIntoView()", f"{tab}-lrc")
            shot(d, "lines", f"{tab}-lrc-lines")

            d.find_element(By.ID, "tab-diffrhythm_edit-button").click()
            tab = "diffrhythm_edit"
            wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, f"#{tab}-ref_song input[type=file]"))
            d.find_element(By.CSS_SELECTOR, f"#{tab}-ref_song input[type=file]").send_keys(str(reference))
            type_into(d, f"{tab}-segments", "0.4:0.9")
            wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{tab}-spans-picture img"), 60)
            d.find_element(By.XPATH, "//button[starts-with(normalize-space(), 'Use the Song tab')]").click()
            time.sleep(1.0)
            d.find_element(By.ID, f"{tab}-generate").click()
            wait_for(d, lambda d: served_file(d, f"{tab}-audio-0"), 120)
            time.sleep(1.5)
            d.execute_script("window.scrollTo(0, 0)")
            shot(d, "edit")

            d.find_element(By.ID, "tab-f5tts_main-button").click()
            tab = "f5tts_main"
            wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, f"#{tab}-ref_audio input[type=file]"))
            d.find_element(By.CSS_SELECTOR, f"#{tab}-ref_audio input[type=file]").send_keys(voice)
            type_into(d, f"{tab}-ref_text", "This is my voice.")
            type_into(d, f"{tab}-text", "Hello, this is the speech tab.")
            wait_for(d, lambda d: "Ready" in status(d, tab), 60)
            d.find_element(By.ID, f"{tab}-generate").click()
            wait_for(d, lambda d: served_file(d, f"{tab}-audio-0"), 120)
            time.sleep(1.5)
            shot(d, "speech")

            d.find_element(By.ID, "tab-compare-button").click()
            d.find_element(By.ID, "compare-open").click()
            wait_for(d, lambda d: "variants" in d.find_element(By.ID, "compare-status").text, 60)
            wait_for(d, lambda d: served_file(d, "compare-audio-1"), 60)
            time.sleep(1.5)
            shot(d, "compare")
    finally:
        running.close()
    print(f"work folder: {Path.cwd()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
