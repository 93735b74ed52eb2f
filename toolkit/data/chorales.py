"""The embedded demo songs: Bach chorales from music21's corpus, sung by espeak-ng over instruments.

Recipe (docs/data.md): a chorale qualifies when its soprano part carries lyrics of a single verse,
the score has no repeats and the soprano has fermatas. Quarter notes last 60/bpm seconds, a note
under a fermata is held `fermata_factor` times as long and every voice then breathes for
`breath_beats` before the next phrase (everything after moves later). Each piece is played by one
of four ensembles (organ and strings, piano, brass, woodwinds; each with its own tempo), taken in
turn along the catalogue, so the songs differ in timbre and tempo as real songs differ in style:
the style conditioner has something to tell the model. The lower voices (and, softly, the soprano)
are rendered with fluidsynth; espeak-ng sings the soprano line in German (toolkit.data.singing);
the mix is 44.1 kHz stereo. Each phrase (ending at a fermata) is one LRC line stamped with its
first note's onset, after the breath. A piece may be cut after the last whole phrase that ends
within `max_seconds`.

Output in `out/`: `<piece_id>.flac` (tags: TITLE, ARTIST, GENRE, MOOD, LYRICS = the LRC text),
`<piece_id>.lrc`, and `manifest.jsonl`; `out/.build/` holds per-piece completion records and the
singer's pitch calibration. A rerun skips pieces already built with the same settings.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io import atomic_path, atomic_write_text
from ..optional import require
from .tags import format_lrc_time, write_tags

DEFAULT_NUM_PIECES = 20      # the demo set: 12 trained on, 8 held out (egs/diffrhythm/run.sh)
DEFAULT_MAX_SECONDS = 30.0
DEFAULT_BPM = 84.0          # the organ's tempo; each ensemble has its own (Ensemble.bpm)
FERMATA_FACTOR = 2.0
BREATH_BEATS = 1.0          # silence after each fermata, in beats: phrases start after a pause
SAMPLE_RATE = 44100
TAIL_SECONDS = 1.0          # room after the last note for the release and reverb
BUILD_VERSION = 2           # bump when the rendering changes, so cached pieces are rebuilt
GENRES = ("chorale", "baroque")
ARTIST = "J. S. Bach (music21 corpus), sung by espeak-ng"

# The 165 qualifying Bach files of music21 10.5.1's corpus (of 410 .mxl/.xml), in catalogue order, as
# found by `scan_corpus()` (about 15 s; the tests re-check a sample). The demo uses the first `num_pieces`.
QUALIFYING = (
    "bwv3.6", "bwv5.7", "bwv6.6", "bwv10.7", "bwv13.6", "bwv24.6", "bwv26.6", "bwv27.6", "bwv36.8-2",
    "bwv37.6", "bwv40.3", "bwv40.6", "bwv40.8", "bwv42.7", "bwv44.7", "bwv45.7", "bwv46.6", "bwv47.5",
    "bwv48.3", "bwv60.5", "bwv62.6", "bwv64.2", "bwv64.4", "bwv65.2", "bwv74.8", "bwv78.7", "bwv83.5",
    "bwv85.6", "bwv89.6", "bwv90.5", "bwv94.8", "bwv101.7", "bwv102.7", "bwv108.6", "bwv110.7",
    "bwv121.6", "bwv122.6", "bwv126.6", "bwv127.5", "bwv145.5", "bwv148.6", "bwv151.5", "bwv153.9",
    "bwv154.8", "bwv159.5", "bwv169.7", "bwv176.6", "bwv187.7", "bwv197.5", "bwv226.2", "bwv244.3",
    "bwv244.32", "bwv244.37", "bwv244.46", "bwv245.3", "bwv245.11", "bwv245.14", "bwv245.15",
    "bwv245.17", "bwv245.28", "bwv245.37", "bwv248.33-3", "bwv248.35-3", "bwv248.46-5", "bwv253",
    "bwv254", "bwv255", "bwv259", "bwv263", "bwv265", "bwv266", "bwv268", "bwv273", "bwv275", "bwv276",
    "bwv282", "bwv283", "bwv284", "bwv285", "bwv286", "bwv288", "bwv289", "bwv290", "bwv291", "bwv292",
    "bwv293", "bwv295", "bwv296", "bwv297", "bwv298", "bwv300", "bwv304", "bwv306", "bwv310", "bwv314",
    "bwv318", "bwv319", "bwv320", "bwv323", "bwv324", "bwv325", "bwv326", "bwv327", "bwv329", "bwv332",
    "bwv336", "bwv337", "bwv341", "bwv342", "bwv344", "bwv346", "bwv348", "bwv349", "bwv350", "bwv351",
    "bwv355", "bwv357", "bwv361", "bwv363", "bwv364", "bwv367", "bwv368", "bwv370", "bwv371", "bwv374",
    "bwv375", "bwv376", "bwv378", "bwv380", "bwv381", "bwv382", "bwv385", "bwv387", "bwv392", "bwv393",
    "bwv394", "bwv395", "bwv396", "bwv400", "bwv403", "bwv404", "bwv405", "bwv406", "bwv407", "bwv408",
    "bwv409", "bwv410", "bwv412", "bwv416", "bwv418", "bwv420", "bwv421", "bwv422", "bwv423", "bwv425",
    "bwv426", "bwv427", "bwv428", "bwv429", "bwv430", "bwv431", "bwv432", "bwv435", "bwv437", "bwv438",
)


class ChoraleError(ValueError):
    """A chorale that does not exist in the corpus or does not meet the selection criteria."""


# -- selection ------------------------------------------------------------------------------------
def catalogue_key(piece: str) -> tuple:
    """'bwv248.12-2' -> ((248, 12, 2), name): natural order of BWV numbers."""
    return tuple(int(n) for n in re.findall(r"\d+", piece)), piece


def piece_id(name: str) -> str:
    """File-system-friendly id of a corpus name: 'bwv10.7' -> 'bwv10_7'."""
    return re.sub(r"[^0-9A-Za-z_-]", "_", name)


def corpus_path(name: str) -> Path:
    corpus = require("music21.corpus", "demo", "the embedded Bach-chorale set")
    matches = [p for p in corpus.getComposer("bach") if Path(p).suffix in (".mxl", ".xml")
               and Path(p).name.rsplit(".", 1)[0] == name]
    if not matches:
        raise ChoraleError(f"'{name}' is not a Bach file of music21's corpus")
    return Path(matches[0])


def _has_fermata(note) -> bool:
    from music21 import expressions

    return any(isinstance(e, expressions.Fermata) for e in note.expressions)


def check_score(score) -> list[str]:
    """Why a parsed score does not qualify (an empty list: it does)."""
    from music21 import bar, repeat, spanner

    reasons = []
    if not score.parts:
        return ["no parts"]
    notes = list(score.parts[0].recurse().notes)
    if not any(n.lyrics for n in notes):
        reasons.append("the soprano has no lyrics")
    if any(len(n.lyrics) > 1 for n in notes):
        reasons.append("the soprano has more than one verse")
    if (any(True for _ in score.recurse().getElementsByClass(bar.Repeat))
            or any(True for _ in score.recurse().getElementsByClass(repeat.RepeatMark))
            or any(True for _ in score.recurse().getElementsByClass(spanner.RepeatBracket))):
        reasons.append("the score has repeats")
    if not any(_has_fermata(n) for n in notes):
        reasons.append("the soprano has no fermatas")
    if len(score.parts) < 2:
        reasons.append("no lower voices")
    return reasons


def scan_corpus(names: Iterable[str] | None = None) -> list[str]:
    """Parse Bach files of the corpus (all by default) and return those that qualify, in catalogue order."""
    corpus = require("music21.corpus", "demo", "the embedded Bach-chorale set")
    paths = {Path(p).name.rsplit(".", 1)[0]: Path(p) for p in corpus.getComposer("bach")
             if Path(p).suffix in (".mxl", ".xml")}
    chosen = sorted(paths if names is None else names, key=catalogue_key)
    return [n for n in chosen if n in paths and not check_score(corpus.parse(paths[n]))]


def demo_pieces(num_pieces: int = DEFAULT_NUM_PIECES) -> list[str]:
    """The first `num_pieces` qualifying chorales (corpus names), deterministic."""
    if num_pieces < 1:
        raise ChoraleError("num_pieces must be at least 1")
    if num_pieces > len(QUALIFYING):
        raise ChoraleError(f"only {len(QUALIFYING)} chorales qualify; asked for {num_pieces}")
    return list(QUALIFYING[:num_pieces])


# -- score -> timed notes -------------------------------------------------------------------------
@dataclass(frozen=True)
class TimedNote:
    onset: float      # seconds
    duration: float   # seconds
    pitch: int        # MIDI
    lyric: str | None = None
    syllabic: str | None = None
    fermata: bool = False


@dataclass
class Phrase:
    start: float
    end: float
    text: str


@dataclass
class Piece:
    name: str                     # corpus name, e.g. bwv10.7
    title: str
    parts: list[list[TimedNote]]  # soprano first
    phrases: list[Phrase]
    duration: float               # seconds of audio, including the tail
    minor: bool = False
    source: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return piece_id(self.name)

    @property
    def soprano(self) -> list[TimedNote]:
        return self.parts[0]

    def lrc(self) -> str:
        return "".join(f"{format_lrc_time(p.start)}{p.text}\n" for p in self.phrases)


def _time_warp(fermatas: list[tuple[float, float]], factor: float, breath: float = 0.0):
    """Quarter-length position -> stretched quarter-length: fermata spans last `factor` times longer
    and `breath` quarters of silence follow each one. A note ending at a fermata's end ends before
    the breath (`end=True`); one starting there starts after it."""
    def warp(q: float, end: bool = False) -> float:
        extra = sum(max(0.0, min(q, b) - a) for a, b in fermatas)
        breaths = sum(1 for _, b in fermatas if (b < q - 1e-9 if end else b <= q + 1e-9))
        return q + (factor - 1.0) * extra + breath * breaths
    return warp


def _clean_lyric(text: str) -> str:
    return text.replace("’", "'").replace("`", "'").strip()


def _join_syllables(notes: Sequence[TimedNote]) -> str:
    out = ""
    for n in notes:
        if not n.lyric:
            continue
        out += n.lyric
        out += "" if n.syllabic in ("begin", "middle") else " "
    return re.sub(r"\s+", " ", out).strip()


def load_piece(name: str, bpm: float = DEFAULT_BPM, fermata_factor: float = FERMATA_FACTOR,
               max_seconds: float | None = DEFAULT_MAX_SECONDS, breath_beats: float = BREATH_BEATS) -> Piece:
    """Parse a qualifying chorale into timed notes and phrases (no audio)."""
    corpus = require("music21.corpus", "demo", "the embedded Bach-chorale set")
    path = corpus_path(name)
    score = corpus.parse(path)
    reasons = check_score(score)
    if reasons:
        raise ChoraleError(f"{name} does not qualify: {'; '.join(reasons)}")
    raw_parts = []
    for part in score.parts:
        notes = []
        for n in part.stripTies().flatten().notes:
            if n.quarterLength <= 0:  # grace notes
                continue
            lyric = n.lyrics[0] if n.lyrics else None
            for p in n.pitches:
                notes.append((float(n.offset), float(n.quarterLength), int(p.midi),
                              _clean_lyric(lyric.text) if lyric and lyric.text else None,
                              lyric.syllabic if lyric else None, _has_fermata(n)))
                lyric = None  # a chord's lyric belongs to its first pitch only
        raw_parts.append(notes)
    fermatas = [(o, o + q) for o, q, _, _, _, f in raw_parts[0] if f]
    if breath_beats < 0:
        raise ChoraleError(f"breath_beats must be >= 0, not {breath_beats}")
    warp = _time_warp(fermatas, fermata_factor, breath_beats)
    spq = 60.0 / bpm
    parts = [[TimedNote(warp(o) * spq, (warp(o + q, end=True) - warp(o)) * spq, p, ly, syl, f)
              for o, q, p, ly, syl, f in notes] for notes in raw_parts]

    phrases, current = [], []
    for note in parts[0]:
        current.append(note)
        if note.fermata:
            phrases.append(current)
            current = []
    if current:
        phrases.append(current)
    phrases = [Phrase(ns[0].onset, ns[-1].onset + ns[-1].duration, _join_syllables(ns)) for ns in phrases]
    phrases = [p for p in phrases if p.text]
    if max_seconds is not None:
        kept = [p for p in phrases if p.end <= max_seconds + 1e-6] or phrases[:1]
        phrases = phrases[: len(kept)]
    end = phrases[-1].end
    parts = [[TimedNote(n.onset, min(n.duration, end - n.onset), n.pitch, n.lyric, n.syllabic, n.fermata)
              for n in notes if n.onset < end - 1e-6] for notes in parts]

    key = score.analyze("key")
    number = ".".join(re.findall(r"\d+", name)[:2])
    incipit = phrases[0].text.rstrip(" ,.;:!?")
    return Piece(name=name, title=f"{incipit} (BWV {number})", parts=parts, phrases=phrases,
                 duration=end + TAIL_SECONDS, minor=key.mode == "minor", source=f"music21 corpus {path.name}",
                 settings={"bpm": bpm, "fermata_factor": fermata_factor, "max_seconds": max_seconds,
                           "breath_beats": breath_beats})


def demo_lyric_lines(num_pieces: int = DEFAULT_NUM_PIECES, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                     bpm: float | None = None) -> list[str]:
    """The LRC line texts (one per phrase) of the demo pieces, without rendering anything
    (`bpm` None: each piece at its ensemble's tempo, as built)."""
    return [p.text for name in demo_pieces(num_pieces)
            for p in load_piece(name, bpm=bpm or ensemble_of(name).bpm, max_seconds=max_seconds).phrases]


def sung_syllables(notes: Sequence[TimedNote]):
    """Soprano notes -> syllables; a note without lyric that follows without a rest extends the
    previous syllable (melisma); one after a rest is left to the instruments."""
    from .singing import SungSyllable

    groups: list[list[TimedNote]] = []
    for n in notes:
        if n.lyric:
            groups.append([n])
        elif groups and abs(groups[-1][-1].onset + groups[-1][-1].duration - n.onset) < 1e-6:
            groups[-1].append(n)
    return [SungSyllable(g[0].onset, g[0].lyric, tuple(n.pitch for n in g), tuple(n.duration for n in g))
            for g in groups]


# -- rendering -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ensemble:
    """Who plays a piece: General MIDI programs (0-based) and a tempo."""

    name: str                  # also the piece's third genre tag
    bpm: float
    melody: int                # doubles the sung soprano, softly
    lower: tuple[int, ...]     # one program per lower voice (alto, tenor, bass); the last one repeats
    double: int | None = None  # a second program doubling the lower voices


ENSEMBLES = (
    Ensemble("organ", DEFAULT_BPM, melody=19, lower=(19,), double=48),  # church organ, string ensemble
    Ensemble("piano", 104.0, melody=0, lower=(0,)),                     # acoustic grand
    Ensemble("brass", 72.0, melody=56, lower=(60, 57, 58)),             # trumpet; horn, trombone, tuba
    Ensemble("woodwinds", 96.0, melody=73, lower=(68, 71, 70)),         # flute; oboe, clarinet, bassoon
)


def ensemble_of(name: str) -> Ensemble:
    """The ensemble of a chorale: in turn along the catalogue, so any first n pieces mix all four."""
    if name in QUALIFYING:
        index = QUALIFYING.index(name)
    else:
        index = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return ENSEMBLES[index % len(ENSEMBLES)]


def accompaniment_voices(piece: Piece, ensemble: Ensemble = ENSEMBLES[0]):
    from .accompaniment import Voice

    def notes(part):
        return [(n.onset, n.duration, n.pitch) for n in part]

    lower = piece.parts[1:]
    pans = np.linspace(40, 88, num=max(len(lower), 2)).round().astype(int)[:len(lower)]  # one per lower part
    programs = [ensemble.lower[min(i, len(ensemble.lower) - 1)] for i in range(len(lower))]
    voices = [Voice(ensemble.melody, notes(piece.soprano), velocity=60, volume=70)]
    voices += [Voice(program, notes(part), velocity=72, volume=95, pan=int(pan))
               for part, pan, program in zip(lower, pans, programs, strict=True)]
    if ensemble.double is not None:
        voices += [Voice(ensemble.double, notes(part), velocity=64, volume=55, pan=int(127 - pan), reverb=60)
                   for part, pan in zip(lower, pans, strict=True)]
    return voices[:15]


def _reverb(mono: np.ndarray, sr: int, seed: int, seconds: float = 1.2, wet: float = 0.18) -> np.ndarray:
    """A cheap stereo room: two decaying-noise impulse responses (seeded, so deterministic)."""
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    decay = np.exp(-6.9 * np.arange(n) / n)  # -60 dB over `seconds`
    out = []
    for _ in range(2):
        ir = rng.standard_normal(n) * decay
        ir /= np.sqrt(np.sum(ir ** 2))
        out.append(fftconvolve(mono, ir)[: len(mono)])
    return ((1 - wet) * mono[None] + wet * np.stack(out)).astype(np.float32)


def render_piece(piece: Piece, singer=None, soundfont: str | Path | None = None,
                 ensemble: Ensemble = ENSEMBLES[0]) -> np.ndarray:
    """The mixed song as float32 [2, N] at 44.1 kHz, peaking at -1 dBFS."""
    from .accompaniment import render
    from .singing import EspeakSinger

    own = singer is None
    singer = singer or EspeakSinger(sample_rate=SAMPLE_RATE)
    try:
        voice = singer.sing(sung_syllables(piece.soprano), piece.duration)
    finally:
        if own:
            singer.close()
    accompaniment = render(accompaniment_voices(piece, ensemble), piece.duration, SAMPLE_RATE, soundfont)
    seed = int(hashlib.sha1(piece.name.encode()).hexdigest()[:8], 16)
    voice = _reverb(voice, SAMPLE_RATE, seed)
    rms = lambda x: math.sqrt(float(np.mean(x ** 2)) + 1e-12)  # noqa: E731
    mix = accompaniment + voice * (1.3 * rms(accompaniment) / rms(voice))
    return (mix * (10 ** (-1 / 20) / max(np.abs(mix).max(), 1e-9))).astype(np.float32)


# -- building the set ------------------------------------------------------------------------------
@dataclass
class BuildSettings:
    bpm: float | None = None   # None: each ensemble's own tempo
    fermata_factor: float = FERMATA_FACTOR
    breath_beats: float = BREATH_BEATS
    max_seconds: float | None = DEFAULT_MAX_SECONDS
    sample_rate: int = SAMPLE_RATE
    version: int = BUILD_VERSION
    soundfont: str = ""

    def key(self) -> dict:
        return asdict(self)


def built_record(name: str, out: str | Path, settings: BuildSettings) -> dict | None:
    """The record of a piece already built in `out` with these settings, else None."""
    out, pid = Path(out), piece_id(name)
    record_path = out / ".build" / f"{pid}.json"
    if not (record_path.is_file() and (out / f"{pid}.flac").is_file() and (out / f"{pid}.lrc").is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
    except ValueError:
        return None
    return {**record, "cached": True} if record.get("settings") == settings.key() else None


def build_piece(name: str, out: str | Path, settings: BuildSettings | None = None, singer=None) -> dict:
    """Build one piece into `out` (skipped when already built with the same settings); returns its record."""
    import soundfile as sf

    from .accompaniment import find_soundfont

    out = Path(out)
    settings = settings or BuildSettings()
    if not settings.soundfont:
        settings = BuildSettings(**{**asdict(settings), "soundfont": str(find_soundfont())})
    pid = piece_id(name)
    record_path = out / ".build" / f"{pid}.json"
    audio_path, lrc_path = out / f"{pid}.flac", out / f"{pid}.lrc"
    cached = built_record(name, out, settings)
    if cached is not None:
        return cached
    start = time.perf_counter()
    ensemble = ensemble_of(name)
    piece = load_piece(name, bpm=settings.bpm or ensemble.bpm, fermata_factor=settings.fermata_factor,
                       max_seconds=settings.max_seconds, breath_beats=settings.breath_beats)
    own = singer is None
    if own:
        from .singing import EspeakSinger

        singer = EspeakSinger(sample_rate=settings.sample_rate, calibration_file=out / ".build" / "espeak_pitch.json")
    try:
        audio = render_piece(piece, singer, settings.soundfont, ensemble)
    finally:
        if own:
            singer.close()
    lrc = piece.lrc()
    genres = [*GENRES, ensemble.name]
    moods = ["solemn", "dark" if piece.minor else "bright"]
    with atomic_path(audio_path) as tmp:
        sf.write(str(tmp), audio.T, settings.sample_rate, format="FLAC", subtype="PCM_16")
        write_tags(tmp, title=piece.title, artist=ARTIST, genres=genres, moods=moods, lyrics=lrc,
                   comment=f"{piece.source}; rendered by toolkit.data.chorales")
    atomic_write_text(lrc_path, lrc)
    record = {
        "id": pid, "name": piece.name, "title": piece.title, "path": audio_path.name, "lrc": lrc_path.name,
        "duration": round(audio.shape[1] / settings.sample_rate, 4), "sample_rate": settings.sample_rate,
        "channels": int(audio.shape[0]), "lyrics": lrc, "lyrics_kind": "lrc",
        "tags": [*genres, *moods], "genres": genres, "moods": moods, "ensemble": ensemble.name,
        "bpm": piece.settings["bpm"],
        "phrases": [asdict(p) for p in piece.phrases], "source": piece.source,
        "settings": settings.key(), "build_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_text(record_path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return {**record, "cached": False}


def _build_worker(args) -> dict:
    name, out, settings = args
    return build_piece(name, out, settings)


def build_set(out: str | Path, num_pieces: int = DEFAULT_NUM_PIECES, settings: BuildSettings | None = None,
              jobs: int | None = None, names: Sequence[str] | None = None, log=print) -> list[dict]:
    """Build the demo set (or `names`) into `out` with `jobs` processes; writes out/manifest.jsonl."""
    from .accompaniment import find_soundfont

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = settings or BuildSettings()
    if not settings.soundfont:
        settings = BuildSettings(**{**asdict(settings), "soundfont": str(find_soundfont())})
    names = list(names) if names is not None else demo_pieces(num_pieces)
    start = time.perf_counter()
    found = {n: built_record(n, out, settings) for n in names}
    todo = [(n, str(out), settings) for n in names if found[n] is None]
    jobs = max(1, min(jobs or min(4, os.cpu_count() or 1), len(todo) or 1))
    if len(todo) <= 1 or jobs == 1:
        fresh = map(_build_worker, todo)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork: workers start at once and share the parent's imports (no torch op has run, no
        # threads yet); spawn elsewhere.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context(method))
        fresh = pool.map(_build_worker, todo)
    records: list[dict] = []
    try:
        for name in names:
            records.append(found[name] or next(fresh))
            _log_record(records[-1], len(records), len(names), log)
    finally:
        if len(todo) > 1 and jobs > 1:
            pool.shutdown(cancel_futures=True)
    manifest = "".join(json.dumps({k: v for k, v in r.items() if k not in ("cached", "build_seconds")},
                                  ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(out / "manifest.jsonl", manifest)
    total = sum(r["duration"] for r in records)
    log(f"built {len(records)} pieces ({total / 60:.1f} min of audio) in {time.perf_counter() - start:.1f} s "
        f"with {jobs} process(es): {out}")
    return records


def _log_record(record: dict, i: int, n: int, log) -> None:
    how = "cached" if record.get("cached") else f"{record['build_seconds']:.1f} s"
    log(f"[{i}/{n}] {record['id']}: {record['duration']:.1f} s, {len(record['phrases'])} lines ({how})")
