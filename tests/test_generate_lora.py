"""`toolkit-generate --lora DIR[:SCALE]`: a LoRA trained on the tiny recipe generates, unmerged, what its merged
export generates (1e-5); request files carry their own adapters; the manifest, the tags and --skip-existing
know them; an adapter for another model is refused with the keys named."""

from __future__ import annotations

import json

import mutagen
import numpy as np
import pytest
import soundfile as sf
from test_adapters import train_base_and_lora
from test_generate_fixtures import run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_cli")
    base, lora, merged = train_base_and_lora(root)
    return root, base, lora / "adapter", merged


def song(ckpt, out, *more, capsys=None):
    argv = ["--ckpt", ckpt, "--lrc", "-", "--instrumental", "--style-text", "folk, guitar", "--length", "0.6",
            "--steps", "2", "--seed", "3", "--dtype", "fp32", "--quiet", "--out", out, *more]  # 1e-5: an fp32 claim
    argv = [a for a in argv if a not in ("--lrc", "-")]
    status, err = run(argv, capsys)
    assert status == 0, err
    return sf.read(str(out))[0], err


def test_lora_flag_equals_the_merged_export(trained, tmp_path, capsys):
    root, base, adapter, merged = trained
    with_lora, _ = song(base, tmp_path / "lora.wav", "--lora", adapter, capsys=capsys)
    from_merged, _ = song(merged, tmp_path / "merged.wav", capsys=capsys)
    plain, _ = song(base, tmp_path / "plain.wav", capsys=capsys)
    assert np.allclose(with_lora, from_merged, atol=1e-5), np.abs(with_lora - from_merged).max()
    assert np.abs(with_lora - plain).max() > 1e-4, "the adapter changes the song"
    manifest = json.loads((tmp_path / "lora.json").read_text())
    (record,) = manifest["adapters"]
    assert record["name"] == "adapter" and record["scale"] == 1.0 and record["rank"] == 4
    tag = str(mutagen.File(str(tmp_path / "lora.wav")).tags.getall("TXXX:ADAPTERS")[0].text[0])
    assert tag.startswith("adapter (sha256:") and tag.endswith("x 1") and str(root) not in tag
    half, _ = song(base, tmp_path / "half.wav", "--lora", f"{adapter}:0.5", capsys=capsys)
    assert np.abs(half - with_lora).max() > 1e-5 and np.abs(half - plain).max() > 1e-5
    off, _ = song(base, tmp_path / "off.wav", "--lora", f"{adapter}:0", capsys=capsys)
    assert np.allclose(off, plain, atol=1e-6), "scale 0 is the base model"


def test_request_files_carry_their_own_adapters_and_skip_existing_knows_them(trained, tmp_path, capsys):
    _, base, adapter, _ = trained
    requests = tmp_path / "r.jsonl"
    rel = adapter.relative_to(adapter.parent.parent)  # relative to the folder the adapter's run sits in
    (adapter.parent.parent / "r.jsonl").write_text("\n".join(json.dumps(r) for r in (
        {"id": "with", "instrumental": True, "lora": [f"{rel}:0.8"]},
        {"id": "without", "instrumental": True, "lora": []},
        {"id": "default", "instrumental": True},
    )) + "\n")
    requests = adapter.parent.parent / "r.jsonl"
    out = tmp_path / "songs"
    argv = ["--ckpt", base, "--requests", requests, "--style-text", "folk", "--length", "0.5", "--steps", "2",
            "--seed", "1", "--quiet", "--out", out, "--lora", adapter, "--skip-existing"]
    status, err = run(argv, capsys)
    assert status == 0, err
    scales = {n: [a["scale"] for a in json.loads((out / f"{n}.json").read_text())["adapters"]]
              for n in ("with", "without", "default")}
    assert scales == {"with": [0.8], "without": [], "default": [1.0]}
    status, err = run(argv, capsys)
    assert status == 0 and err.count("already generated") == 3
    status, err = run(argv[:-3] + ["--lora", f"{adapter}:0.5", "--skip-existing"], capsys)
    assert "(default): already generated" not in err and "(with): already generated" in err


def test_an_adapter_for_another_model_is_refused_naming_the_keys(trained, tmp_path, capsys):
    _, _, adapter, _ = trained
    from test_generate_fixtures import make_checkpoint

    other = make_checkpoint(tmp_path / "other.pt")  # dim 64, 2 blocks: the adapter's layers do not fit
    status, err = run(["--ckpt", other, "--instrumental", "--style-text", "folk", "--length", "0.4", "--quiet",
                       "--lora", adapter, "--out", tmp_path / "o"], capsys)
    assert status == 2 and "does not fit this model" in err and "lora_A" in err
    assert not (tmp_path / "o").exists()
    status, err = run(["--ckpt", other, "--instrumental", "--style-text", "folk", "--quiet",
                       "--lora", tmp_path / "nowhere", "--out", tmp_path / "o"], capsys)
    assert status == 2 and "nowhere" in err
