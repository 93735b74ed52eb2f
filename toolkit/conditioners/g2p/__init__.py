"""Lyrics -> phoneme tokens of DiffRhythm's 363-symbol vocabulary (token = id + 1, 0 = filler).

`PhonemeTokenizer(language="auto")` reproduces upstream DiffRhythm's tokenizer (English through
espeak-ng, Mandarin through the lexicon and the ONNX polyphone model); other languages go through
espeak-ng and the mapping tables of `espeak_map`. Back ends load on first use, per language: this
package imports nothing heavy. Mandarin needs `python -m toolkit.conditioners.g2p.fetch` once.
"""

from .tokenizer import PhonemeTokenizer, Phonemized

__all__ = ["PhonemeTokenizer", "Phonemized"]
