"""What every recipe's generation request shares: the error type, option declarations, request records.

A recipe's request is a dataclass; each field a user may set carries `option(...)` metadata saying how a
front end offers it (the CLI's flag and help, the kind of value, a group). `toolkit-generate`, request
files and the web app all build themselves from these declarations, so a recipe adds an option by adding a
field: no front-end code changes. Kinds:

  text       a string                         --style-text TEXT
  text_file  a string read from a file        --lrc FILE        (request files: the text, or "<field>_path")
  path       a user file (audio)              --style-audio FILE (relative to a request file; tags carry
                                                                 its name and a short hash, never the path)
  int, float numbers                          --steps N
  flag       a boolean switch                 --instrumental
  choice     one of `choices`                 --solver euler
  spans      [[start, end], ...] seconds      --segments "10:20,45:-1"
  mapping    name=value pairs (repeatable)    --condition bpm=96  (request files: a JSON object)

Three declarations only the web app reads (the CLI ignores them):

  editor="lrc"          the text is timed lyrics: the app edits it line by line, with the validator's LineNotes
                        (and the LRC format's own findings: malformed, untimed, out of order) beside each line
  fills="lrc", fill_label="time evenly"
                        the app offers a button that runs the validator on a request holding this field and
                        copies the field `fills` of the checked request into that field's editor (plain lyrics
                        timed into an LRC, exactly as generation would time them)
  tab="edit"            the option starts a mode of its own: the app gives the recipe a tab of that name showing
                        these options beside every option without a tab (editing and continuation)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("text", "text_file", "path", "int", "float", "flag", "choice", "spans", "mapping")
OPTION_KEY = "toolkit_option"


class RequestError(ValueError):
    """A generation request that cannot be served; the message says what to change. `notes`: the LineNotes
    found before the error (which lines of the lyrics are after the end, unvoiceable, ...)."""

    def __init__(self, message: str, notes: Sequence[LineNote] = ()):
        super().__init__(message)
        self.notes = list(notes)


@dataclass(frozen=True)
class LineNote:
    """What validation found about one line of a multi-line option (an editor shows it beside the line): the
    option's field, the line's time (None for untimed text) and text as validation read them, a level
    ("ok", "info", "warning"), the status in a word or two and a sentence saying why."""

    field: str
    time: float | None
    text: str
    level: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class Option:
    """How a front end offers one request field."""

    field: str
    kind: str
    help: str
    flag: str
    group: str = "generation"
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    aliases: tuple[str, ...] = ()  # other names a request file may use for the field
    editor: str | None = None      # the web app's editor for the text ("lrc"); see the module docstring
    fills: str | None = None       # the field the validator turns this one into (a button in the web app)
    fill_label: str | None = None  # that button's words
    tab: str | None = None         # the web app's tab of a mode of its own ("edit")


EDITORS = ("lrc",)


def option(help: str, *, kind: str = "text", flag: str | None = None, group: str = "generation",
           choices: tuple[str, ...] = (), metavar: str | None = None, aliases: tuple[str, ...] = (),
           editor: str | None = None, fills: str | None = None, fill_label: str | None = None,
           tab: str | None = None) -> dict:
    """Field metadata declaring a request option (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}; one of {KINDS}")
    if editor is not None and (editor not in EDITORS or kind not in ("text", "text_file")):
        raise ValueError(f"editor={editor!r} needs a text option and one of {EDITORS}")
    return {OPTION_KEY: dict(kind=kind, help=help, flag=flag, group=group, choices=tuple(choices),
                             metavar=metavar, aliases=tuple(aliases), editor=editor, fills=fills,
                             fill_label=fill_label, tab=tab)}


def request_options(request_type: type) -> list[Option]:
    """The declared options of a request dataclass, in field order."""
    out = []
    for f in dataclasses.fields(request_type):
        meta = f.metadata.get(OPTION_KEY)
        if meta is None:
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        out.append(Option(field=f.name, kind=meta["kind"], help=meta["help"], flag=flag, group=meta["group"],
                          choices=meta["choices"], metavar=meta["metavar"], aliases=meta["aliases"],
                          editor=meta.get("editor"), fills=meta.get("fills"), fill_label=meta.get("fill_label"),
                          tab=meta.get("tab")))
    names = {o.field for o in out}
    for o in out:
        if o.fills is not None and o.fills not in names:
            raise ValueError(f"{request_type.__name__}.{o.field}: fills={o.fills!r} names no option of the request")
    return out


def parse_spans(text: Any, name: str = "spans") -> list[tuple[float, float]] | None:
    """'[[10,20],[45,-1]]' or '10:20,45:-1' (or a list already) -> [(start, end)] seconds; `name` (the flag or
    field) appears in the error."""
    if text is None:
        return None
    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = [[float(x) for x in part.split(":")] for part in text.split(",") if part.strip()]
            except ValueError:
                value = None
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, (list, tuple)) and len(s) == 2 for s in value)):
        raise RequestError(f'{name} {text!r}: give spans in seconds like "[[10,20],[45,-1]]" or "10:20,45:-1"')
    try:
        return [(float(s), float(e)) for s, e in value]
    except (TypeError, ValueError):
        raise RequestError(f"{name} {text!r}: start and end must be numbers of seconds") from None


def from_mapping(request_type: type, data: Mapping[str, Any]) -> Any:
    """A request from a plain mapping (a request-file line, a web form); unknown fields are an error."""
    known = {f.name for f in dataclasses.fields(request_type)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RequestError(f"unknown request field(s) {unknown}; known: {sorted(known)}")
    return request_type(**data)


def to_record(request: Any) -> dict[str, Any]:
    """A request as plain JSON-able data (the manifest's record of it)."""
    return json.loads(json.dumps(dataclasses.asdict(request), default=str))


@dataclass
class Checked:
    """A request after validation: the request to run (e.g. plain lyrics timed into an LRC), the warnings
    it earned (they also go into the song's manifest), the lyric lines it will sing as an LRC (for the
    lyrics tags; None when nothing is sung), text fields for the audio's tags (user files named, never by
    path), fields the manifest records (e.g. the LRC the model was given), and LineNotes (each lyric line's fate,
    for an editor that shows them beside the lines)."""

    request: Any
    warnings: list[str] = dataclasses.field(default_factory=list)
    lrc: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[LineNote] = dataclasses.field(default_factory=list)


class RequestValidator:
    """Checks requests for a configured model without building it (no weights are read): what the CLI,
    request files and the web app run before any heavy work. Recipes extend `check`."""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def check(self, request: Any) -> Checked:
        return Checked(request.check())


def codec_geometry(node: Any) -> dict[str, Any]:
    """The configured codec's sample rate, channels, hop, latent size and frame rate, without weights."""
    from ..registry import CODECS, split_node

    name, kwargs = split_node(node, "codec")
    return CODECS.get(name).geometry(**kwargs)
