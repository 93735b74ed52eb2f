"""The released-size DiffRhythm DiT has exactly upstream's state-dict keys and shapes (built on meta)."""

from __future__ import annotations

import ast

import pytest
from golden import reference_file

from toolkit.models.diffrhythm.checkpoints import build_released_backbone

# upstream parameter counts at the released config (docs/reference/diffrhythm.md §3.1)
PARAMS = {2048: 1_109_315_648, 6144: 1_109_709_888}


def reference_keys(max_frames: int) -> dict[str, tuple[int, ...]]:
    path = reference_file("diffrhythm_keys.txt")
    keys = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        frames, key, shape = line.split("\t")
        if int(frames) == max_frames:
            keys[key.removeprefix("transformer.")] = tuple(ast.literal_eval(shape))
    assert keys, f"no keys for max_frames {max_frames} in {path}"
    return keys


@pytest.mark.parametrize("variant,max_frames", [("base", 2048), ("full", 6144)])
def test_released_keys_and_shapes(variant, max_frames):
    model = build_released_backbone(variant, device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = reference_keys(max_frames)
    assert sorted(set(theirs) - set(ours)) == [], "keys upstream has and we lack"
    assert sorted(set(ours) - set(theirs)) == [], "keys we have and upstream lacks"
    wrong = {k: (ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]}
    assert wrong == {}
    assert list(ours) == list(theirs), "key order differs from upstream"
    assert sum(p.numel() for p in model.parameters()) == PARAMS[max_frames]
    assert all(p.device.type == "meta" for p in model.parameters())


def test_v1_full_variant_has_base_keys():
    base = build_released_backbone("base", device="meta").state_dict()
    v10 = build_released_backbone("full-v1.0", device="meta")
    assert v10.max_frames == 6144 and not v10.has_duration
    assert {k: v.shape for k, v in v10.state_dict().items()} == {k: v.shape for k, v in base.items()}
