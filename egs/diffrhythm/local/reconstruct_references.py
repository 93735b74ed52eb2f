"""The codec ceiling: each requested song's own audio, cut to the song length, encoded and decoded by the
recipe's codec, written as a song of the group "reconstructed" (with the manifest fields the evaluation reads).

A generated song is always heard through the codec's decoder (the default mel codec decodes with
Griffin-Lim); the reference recordings are not. Scoring the references' own reconstructions like songs shows
how much of every figure the decoder alone costs: no model can beat its codec's reconstruction of the
very piece it imitates, and an evaluation embedder that cannot place these reconstructions in their own
style class cannot judge the style of decoded songs either.

    python local/reconstruct_references.py --config conf/default.yaml --requests EXP/requests.jsonl \
        --out EXP/songs/reconstructed [key=value ...]
"""

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--requests", required=True, help="the requests file of the conditioned songs")
    parser.add_argument("--out", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    import torch

    from toolkit.audio import load_audio, save_audio
    from toolkit.config import load_config, to_plain
    from toolkit.registry import CODECS, load_components

    load_components()
    cfg = load_config(args.config, args.overrides)
    node = to_plain(cfg.codec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    codec = None
    done = 0
    for line in Path(args.requests).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        request = json.loads(line)
        seconds = float(request.get("length") or cfg.get("default_seconds") or 11.0)
        manifest = {"request": {"title": request["title"], "extra": {"group": "reconstructed"}},
                    "condition": "reconstructed", "codec": node, "seconds": seconds, "lrc": request.get("lrc"),
                    "style": {"audio": request["style_audio"], "text": None}}
        wav_path, json_path = out / f"{request['title']}.wav", out / f"{request['title']}.json"
        if wav_path.is_file() and json_path.is_file() and json.loads(json_path.read_text()) == manifest:
            continue  # already reconstructed from the same request and codec
        codec = codec or CODECS.build(node)
        wav, sr = load_audio(request["style_audio"], sample_rate=codec.sample_rate, channels=codec.channels,
                             duration=seconds)
        with torch.no_grad():
            decoded = codec.decode(codec.encode(wav[None].float()))[0, :, : wav.shape[-1]]
        save_audio(wav_path, decoded.float().cpu(), sr)
        json_path.write_text(json.dumps(manifest, ensure_ascii=False) + "\n", encoding="utf-8")
        done += 1
    print(f"{done} references reconstructed by the codec -> {out}")


if __name__ == "__main__":
    main()
