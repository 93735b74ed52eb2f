"""A recipe the app has never heard of gets a tab from the options its request declares, every kind of option,
with its own validation messages and a working Generate; and the app's parts on their own: the runner's stages and
cancellation hook, page values to request fields, the LRC line view, the DiffRhythm validator's line notes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from gradio_client import Client, handle_file
from omegaconf import OmegaConf
from test_generate_fixtures import LRC, TINY, make_checkpoint, write_tone

from toolkit.app.lines import lrc_rows, rows_html
from toolkit.app.served import ServedModel, Settings
from toolkit.app.server import free_port, launch
from toolkit.app.service import Service
from toolkit.app.values import request_data, tab_options, tabs_of
from toolkit.generation import runner
from toolkit.generation.requests_io import Job
from toolkit.generation.sources import ModelSource
from toolkit.models.base import GenerationResult
from toolkit.models.requests import RequestError, RequestValidator, option, request_options


@dataclass
class ChimeRequest:
    """A made-up recipe's request using every option kind."""

    words: str | None = field(default=None, metadata=option("what to chime", group="input (one of)"))
    poem: str | None = field(default=None, metadata=option("a poem", kind="text_file", group="input (one of)"))
    silence: bool = field(default=False, metadata=option("nothing at all", kind="flag", group="input (one of)"))
    clip: str | None = field(default=None, metadata=option("a clip to chime over", kind="path", group="sound"))
    pitch: float = field(default=440.0, metadata=option("pitch in Hz", kind="float", group="sound"))
    repeats: int | None = field(default=None, metadata=option("how often", kind="int"))
    bell: str | None = field(default=None, metadata=option("bell", kind="choice", choices=("small", "big")))
    quiet: bool = field(default=False, metadata=option("softer", kind="flag"))
    gaps: list | None = field(default=None, metadata=option("silent spans", kind="spans", tab="gaps"))
    extra: dict[str, Any] = field(default_factory=dict, metadata=option("more", kind="mapping"))
    seed: int | None = field(default=None, metadata=option("seed", kind="int"))
    title: str | None = field(default=None, metadata=option("title", group="output"))

    def check(self) -> ChimeRequest:
        if self.pitch <= 0:
            raise RequestError(f"pitch must be positive, got {self.pitch}")
        if not (self.words or self.poem or self.silence):
            raise RequestError("give words, a poem, or ask for silence")
        return self


class Chimes:
    """A recipe class as far as the app sees one: its request type, validator and output name."""

    request_type = ChimeRequest
    validator_type = RequestValidator
    output_name = "chime"
    sampler = None

    def generate(self, request: ChimeRequest, progress=None) -> GenerationResult:
        sr, n = 8000, 4
        for i in range(n):
            if progress is not None:
                progress(i, n)
        t = torch.arange(sr) / sr
        amplitude = 0.1 if request.quiet else 0.5
        wav = amplitude * torch.sin(2 * math.pi * request.pitch * t)[None]
        return GenerationResult(audio=[wav], sample_rate=sr, latents=[], request=request, info={"seconds": 1.0})


@pytest.fixture(scope="module")
def chimes(tmp_path_factory):
    root = tmp_path_factory.mktemp("chimes")
    weights = root / "chimes.pt"
    weights.write_bytes(b"not really weights")
    source = ModelSource(Chimes, OmegaConf.create({"recipe": "chimes"}), "ckpt", weights)
    model = ServedModel("chimes.pt (chimes)", "ckpt", weights, "chimes", Chimes, source=source)
    model.built = lambda *_: (Chimes(), {"sha256": "0" * 16, "path": str(weights)})
    service = Service([model], root / "out", Settings(torch.device("cpu"), "fp32", torch.float32))
    running = launch(service, port=free_port(), block=False)
    yield running, Client(running.url, verbose=False), root
    running.close()


def test_a_new_recipe_gets_tabs_from_its_declarations(chimes):
    running, client, root = chimes
    config = running.blocks.get_config_file()
    tabs = [c["props"]["label"] for c in config["components"] if c["type"] == "tabitem"]
    assert tabs == ["Chime", "Gaps", "Compare"]
    kinds = {c["props"].get("elem_id"): c["type"] for c in config["components"]}
    assert kinds["chimes_main-clip"] == "audio" and kinds["chimes_main-bell"] == "dropdown"
    assert kinds["chimes_main-quiet"] == "checkbox" and kinds["chimes_main-poem"] == "textbox"
    assert "chimes_main-gaps" not in kinds and kinds["chimes_gaps-gaps"] == "textbox"
    assert kinds["chimes_main-input"] == "radio"  # the one-of group


def test_a_new_recipe_checks_and_generates(chimes, tmp_path):
    running, client, root = chimes
    tab = running.blocks.toolkit_tabs["chimes_main"]
    bad = client.predict(*tab.arguments({"words": "ding", "pitch": -3}), api_name="/chimes_main_check")
    assert "pitch must be positive, got -3.0" in bad
    none = client.predict(*tab.arguments({}), api_name="/chimes_main_check")
    assert "give words, a poem, or ask for silence" in none
    clip = write_tone(tmp_path / "clip.wav", seconds=0.5)
    values = {"words": "ding dong", "pitch": 220, "repeats": "3", "bell": "big", "quiet": True,
              "clip": handle_file(str(clip)), "extra": "color=blue\nsize=3", "seed": "5", "title": "bells"}
    result = client.predict(*tab.arguments(values), "wav", api_name="/chimes_main_generate")
    assert "1 output(s)" in result[0]
    manifest_path = next((root / "out").rglob("bells.json"))
    request = json.loads(manifest_path.read_text())["request"]
    assert request["words"] == "ding dong" and request["pitch"] == 220 and request["repeats"] == 3
    assert request["bell"] == "big" and request["quiet"] is True and request["extra"] == {"color": "blue", "size": 3}
    assert Path(request["clip"]).name == "clip.wav"
    gaps = running.blocks.toolkit_tabs["chimes_gaps"]
    ok = client.predict(*gaps.arguments({"silence": True, "gaps": "0:0.5"}, chosen={"input (one of)": "silence"}),
                        api_name="/chimes_gaps_check")
    assert "Ready" in ok


# --------------------------------------------------------------------------------------------- parts
def test_page_values_become_request_fields():
    options = tab_options(ChimeRequest, "gaps")
    data = request_data(options, {"words": "hi", "poem": "ignored", "pitch": "220", "repeats": 2.0, "bell":
                                  "model default", "gaps": "1:2, 3:-1", "extra": "a=1\n\nb=[x, y]", "quiet": False},
                        {"input (one of)": "words"})
    assert data == {"words": "hi", "pitch": 220.0, "repeats": 2, "gaps": [(1.0, 2.0), (3.0, -1.0)],
                    "extra": {"a": 1, "b": ["x", "y"]}}
    assert request_data(options, {}, {"input (one of)": "silence"}) == {"silence": True}
    with pytest.raises(RequestError, match="is not a number"):
        request_data(options, {"pitch": "high"}, {})
    with pytest.raises(RequestError, match="must be a whole number"):
        request_data(options, {"repeats": "2.5"}, {})
    with pytest.raises(RequestError, match="give spans in seconds"):
        request_data(options, {"gaps": "1-2"}, {})
    assert tabs_of(ChimeRequest) == ["gaps"]
    assert "gaps" not in {o.field for o in tab_options(ChimeRequest, None)}


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="editor='lrc' needs a text option"):
        option("x", kind="int", editor="lrc")

    @dataclass
    class Bad:
        a: str | None = field(default=None, metadata=option("a", fills="nothing"))

    with pytest.raises(ValueError, match="fills='nothing' names no option"):
        request_options(Bad)


def test_runner_reports_stages_and_a_raising_callback_leaves_nothing(tmp_path):
    job = Job("chime", ChimeRequest(words="x", seed=1))
    job.checked = RequestValidator({}).check(job.request)
    settings = runner.RunSettings(tmp_path, "wav", False, torch.device("cpu"), "fp32", quiet=True)
    record = {"sha256": "0" * 16}
    stages = []
    paths = runner.run_job(job, Chimes(), settings, record, {"recipe": "chimes"},
                           progress=lambda *a: stages.append(a))
    assert stages == [("sampling", 1, 4), ("sampling", 2, 4), ("sampling", 3, 4), ("sampling", 4, 4),
                      ("decoding", 0, 1), ("writing", 0, 1)]
    assert sorted(p.name for p in paths) == ["chime.json", "chime.wav"]
    for path in paths:
        path.unlink()

    class Stop(Exception):
        pass

    for stop_at in ("sampling", "writing"):
        def stop(stage, *_, stop_at=stop_at):
            if stage == stop_at:
                raise Stop

        with pytest.raises(Stop):
            runner.run_job(job, Chimes(), settings, record, {"recipe": "chimes"}, progress=stop)
        assert list(tmp_path.iterdir()) == []


def test_the_line_view_reads_the_lrc_format_itself():
    text = "[ti:title]\n[00:01.00]one\n\nno timestamp here\n[00:00.50]two\n[00:6x]bad\n[offset:+500]\n"
    rows = lrc_rows(text)
    assert [(r.number, r.status) for r in rows] == [(1, "tag"), (2, ""), (4, "skipped"), (5, "out of order"),
                                                    (6, "not read"), (7, "tag")]
    assert rows[1].time == pytest.approx(0.5)  # the offset moves every line 0.5 s earlier
    assert "no timestamp at the start" in rows[2].message and "malformed timestamp" in rows[4].message
    html = rows_html(rows)
    assert "&lt;" not in html and 'class="tk-warning"' in html
    assert "<script>" not in rows_html(lrc_rows("[00:01.00]<script>x</script>"))


def test_diffrhythm_validator_notes_every_lines_fate():
    from toolkit.models.diffrhythm.request import SongRequest as request_type
    from toolkit.models.diffrhythm.validation import SongValidator
    from toolkit.models.requests import from_mapping

    validator = SongValidator(OmegaConf.create(TINY))
    lrc = "[00:00.05]hello world\n[00:00.10]\n[00:00.20]... !!!\n[00:00.25]" + "la " * 40 + "\n[00:09.00]late\n"
    checked = validator.check(from_mapping(request_type, {"lrc": lrc, "style_text": "folk"}))
    fates = {n.text[:5]: (n.level, n.status) for n in checked.notes}
    assert fates["hello"] == ("ok", "sung") and fates[""] == ("info", "gap")
    assert fates["... !"] == ("warning", "not voiceable") and fates["la la"] == ("warning", "cut")
    assert fates["late"] == ("warning", "after the end")
    rows = lrc_rows(lrc, checked.notes)
    assert [r.status for r in rows] == ["sung", "gap", "not voiceable", "cut", "after the end"]
    with pytest.raises(RequestError) as err:
        validator.check(from_mapping(request_type, {"lrc": "[00:09.00]late\n", "style_text": "folk"}))
    assert [n.status for n in err.value.notes] == ["after the end"]


def test_a_checkpoint_is_built_once(tmp_path):
    from toolkit.app.served import serve_checkpoint

    settings = Settings(torch.device("cpu"), "fp32", torch.float32)
    model = serve_checkpoint(make_checkpoint(tmp_path / "a.pt"), settings=settings)
    source = model.source_for(None, settings)
    assert not model.is_built(source)
    first, record = model.built(source, settings)
    assert model.built(source, settings)[0] is first and record["weights"] == "ema"
    service = Service([model], tmp_path / "out", settings)
    outcome = service.generate(model.label, {"lrc": LRC, "style_text": "folk", "seed": 3}, "s")
    assert outcome.ok and outcome.items[0].audio.is_file()


def test_with_a_requested_format_each_model_gets_its_backbone_s_choice(tmp_path):
    from toolkit.app.served import serve_checkpoint
    from toolkit.precision import choose_dtype

    settings = Settings(torch.device("cpu"), "fp32", torch.float32, requested="auto")
    model = serve_checkpoint(make_checkpoint(tmp_path / "a.pt"), settings=settings)  # a DiffRhythm DiT
    source = model.source_for(None, settings)
    expected = choose_dtype("auto", "cpu", component="dit_diffrhythm")
    assert settings.dtype_for(source) == (expected.name, expected.dtype, expected.reason)
    recipe, _ = model.built(source, settings)
    assert recipe.transformer.transformer_blocks[0].mlp.gate_proj.weight.dtype == expected.dtype
    outcome = Service([model], tmp_path / "out", settings).generate(
        model.label, {"lrc": LRC, "style_text": "folk", "seed": 3}, "s")
    assert outcome.ok and json.loads(outcome.items[0].manifest.read_text())["dtype"] == expected.name


def test_a_published_folder_is_served_per_request(tmp_path):
    from test_generate_pretrained import LRC as PUBLISHED_LRC
    from test_generate_pretrained import build_published_folder

    from toolkit.app.served import serve_folder

    folder = build_published_folder(tmp_path / "published")
    with pytest.raises(RequestError, match="--variant base or --variant full"):
        serve_folder(folder)  # the CLI's message: base and v1.0 full look alike
    model = serve_folder(folder, options={"variant": "base", "unknown": 1})
    assert model.kind == "pretrained" and model.recipe == "diffrhythm" and model.options == {"variant": "base"}
    settings = Settings(torch.device("cpu"), "fp32", torch.float32)
    service = Service([model], tmp_path / "out", settings)
    outcome = service.generate(model.label, {"lrc": PUBLISHED_LRC, "style_text": "folk, acoustic guitar",
                                             "length": 0.1, "steps": 2, "seed": 4}, "s")
    assert outcome.ok, outcome.message
    manifest = json.loads(outcome.items[0].manifest.read_text())
    assert manifest["checkpoint"]["kind"] == "pretrained" and manifest["checkpoint"]["variant"] == "base"
    assert manifest["checkpoint"]["weights"] == "published"
