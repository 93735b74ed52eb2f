"""Where the Mandarin data files of the phoneme tokenizer live, and their checksums.

The files are too large to commit (the lexicon is 14.8 MB, the polyphone BERT 76.6 MB). They ship,
byte-identical to the ones DiffRhythm reads, in the PyPI source distribution maskgct==0.0.19 (Amphion,
MIT licence); `python -m toolkit.conditioners.g2p.fetch` copies them into the cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

FETCH_COMMAND = "python -m toolkit.conditioners.g2p.fetch"
ENV_VAR = "TOOLKIT_G2P_DIR"

SDIST_NAME = "maskgct"
SDIST_VERSION = "0.0.19"
SDIST_FILE = f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "b262ff7c5952f79b8be75c7724c0bcaa68827729c389cd75ec616bb3cbbcdf48"
# Folder of the g2p sources inside the sdist.
SDIST_PREFIX = f"{SDIST_NAME}-{SDIST_VERSION}/maskgct/maskgct/tts/maskgct/g2p/sources/"

# Path under the cache dir (same as under the sdist's sources/) -> sha256.
FILES = {
    "chinese_lexicon.txt": "a3a7685d1c3e68eb2fa304bfc63e90c90c3c1a1948839a5b1b507b2131b3e2fb",
    "pinyin_2_bpmf.txt": "dc8b048a20cf61d04b5a36bc6939db74095719b8099269a1269023ee3e6535b4",
    "bpmf_2_pinyin.txt": "bf24a3306ffbef6b1fbfc1780e25933361bc4d6587b8eb331b13241b8d892ba2",
    "g2p_chinese_model/poly_bert_model.onnx": "8765d835ffdf9811c832d4dc7b6a552757aa8615c01d1184db716a50c20aebbc",
    "g2p_chinese_model/polychar.txt": "9df819e371415c23e26a2907236a0228ef93772cc698d93dc0c18844956d1011",
    "g2p_chinese_model/polydict.json": "ec6c8bd6d223205f48a17a07720bc594c20b3eab5460175414f7ebee1e66b6b9",
    "g2p_chinese_model/polydict_r.json": "386e90aecf0f9bdbeac41541d7013e347594188962e17c7daee83caf40d993d2",
    "g2p_chinese_model/vocab.txt": "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c",
    "g2p_chinese_model/config.json": "5a16b71fe399bfa6114053a1e249665c0d7921a6a1c10b3f530cb7d213f8a735",
}


class G2PDataMissingError(FileNotFoundError):
    """A Mandarin data file of the tokenizer has not been fetched."""


def data_dir() -> Path:
    """$TOOLKIT_G2P_DIR, else ~/.cache/toolkit/g2p."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "toolkit" / "g2p"


def data_file(name: str) -> Path:
    """Path of one data file; a clear error naming the fetch command if it is absent."""
    if name not in FILES:
        raise KeyError(f"unknown g2p data file {name!r}; known: {sorted(FILES)}")
    path = data_dir() / name
    if not path.is_file():
        raise G2PDataMissingError(
            f"the Mandarin tokenizer data file {path} is missing. Fetch the data files once with "
            f"`{FETCH_COMMAND}` (it takes them from the PyPI sdist {SDIST_FILE}; set ${ENV_VAR} to use "
            f"another directory). English and other languages do not need these files.")
    return path


def missing_files(directory: Path | None = None) -> list[str]:
    directory = directory or data_dir()
    return [name for name in FILES if not (directory / name).is_file()]
