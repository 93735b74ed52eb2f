"""The repository's copy of the public fixtures is complete and unaltered (its SHA256SUMS), and an
override root ($TOOLKIT_GOLDEN_DIR) that carries a checksum file is checked the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from golden import CHECKSUMS, FIXTURES, REPO_GOLDEN, golden_root


def read_checksums(root: Path) -> dict[str, str]:
    path = root / CHECKSUMS
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/sync_fixtures.py")
    listed = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    return listed


def check_tree(root: Path) -> None:
    listed = read_checksums(root)
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != CHECKSUMS}
    assert present == set(listed), (f"{root}: files not in {CHECKSUMS}: {sorted(present - set(listed))}; "
                                    f"listed but missing: {sorted(set(listed) - present)}")
    changed = [n for n, d in listed.items() if hashlib.sha256((root / n).read_bytes()).hexdigest() != d]
    assert not changed, f"{root}: these fixtures differ from their checksums: {changed}"


@pytest.mark.parametrize("root", [REPO_GOLDEN, FIXTURES / "reference"], ids=["golden", "reference"])
def test_repository_fixtures_match_their_checksums(root):
    check_tree(root)


def test_every_public_set_is_in_the_repository():
    sets = {p.name for p in REPO_GOLDEN.iterdir() if p.is_dir()}
    assert {"diffrhythm", "f5tts", "oobleck", "vocos", "sao"} <= sets


def test_override_root_with_checksums_is_checked():
    root = golden_root()
    if (root / CHECKSUMS).is_file():
        check_tree(root)
    else:  # an unseen set may come without a checksum file; its files are still required by the parity tests
        assert any(p.is_dir() for p in root.iterdir()), f"{root} holds no fixture set"


def test_checksum_check_catches_a_changed_file(tmp_path):
    import shutil

    copy = tmp_path / "golden"
    shutil.copytree(REPO_GOLDEN / "vocos", copy / "vocos")
    lines = [line for line in (REPO_GOLDEN / CHECKSUMS).read_text().splitlines() if "  vocos/" in line]
    (copy / CHECKSUMS).write_text("\n".join(lines) + "\n")
    check_tree(copy)
    (copy / "vocos" / "config.json").write_text("{}")
    with pytest.raises(AssertionError, match="differ from their checksums"):
        check_tree(copy)
