"""The page: one tab per served recipe (and per mode it declares, e.g. editing), each built from the options its
request declares (toolkit.models.requests.option), plus the Compare tab. No recipe is named here.

Per recipe tab: the inputs on the left (one-of groups as a choice, an LRC editor with its line-by-line view, a
"time evenly"-style fill button, uploads for path options, the song to edit with its spans drawn), settings and
the run on the right (Generate, Cancel, progress, status), then each output: player (with download), spectrogram,
and the audio + manifest files. Every input change re-checks the request with the recipe's validator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..generation.outputs import FORMATS
from ..generation.requests_io import read_text
from ..models.requests import Option, RequestError
from .compare_tab import compare_tab
from .lines import lrc_rows, rows_html
from .served import ServedModel, by_recipe
from .service import Outcome, Service
from .values import (
    DEFAULT_CHOICE,
    Group,
    field_value,
    groups_of,
    initial_value,
    label_of,
    request_data,
    tab_options,
    tabs_of,
)

log = logging.getLogger(__name__)
SETTINGS_GROUPS = ("generation", "output")
CONTENT_KINDS = ("text", "text_file", "path")
CSS = """
.tk-lines table { width: 100%; border-collapse: collapse; font-size: 0.9em; }
.tk-lines td, .tk-lines th { padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
.tk-lines-title { font-weight: 600; margin: 4px 0; }
.tk-ok td:last-child { color: #2a7a2a; }
.tk-info td:last-child { color: #555; }
.tk-warning { background: #fff4e0; }
.tk-error { background: #fde2e2; }
.tk-status-error { color: #b00020; }
"""


def theme() -> Any:
    """Gradio's default look with the system's fonts (nothing fetched from a font host)."""
    return gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def status_markdown(outcome: Outcome, what: str = "") -> str:
    """The status line: the error (escaped: it may quote the user's text), or the result and its warnings."""
    message = html.escape(outcome.message, quote=False)
    if not outcome.ok:
        if outcome.message.startswith("cancelled"):
            return f"**Cancelled:** {message[len('cancelled: '):]}"
        return f'<span class="tk-status-error">**Error:** {message}</span>'
    lines = [f"**{html.escape(what, quote=False) if what else message}**"]
    lines += [f"- warning: {html.escape(w, quote=False)}" for w in outcome.warnings]
    return "\n".join(lines)


@dataclasses.dataclass
class Field:
    """The inputs of one option on the page."""

    option: Option
    component: Any                 # what holds the value (None: a flag picked in a one-of group)
    box: Any = None                # what is shown or hidden with the one-of choice


class RecipeTab:
    """One tab: a recipe's options (those without a tab, plus those of `mode`), its models, the run and outputs."""

    def __init__(self, service: Service, recipe: str, models: Sequence[ServedModel], mode: str | None, title: str):
        self.service, self.recipe, self.models, self.mode, self.title = service, recipe, list(models), mode, title
        self.request_type = models[0].request_type
        self.options = tab_options(self.request_type, mode)
        self.defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                         for f in dataclasses.fields(self.request_type)}
        self.prefix = f"{recipe}_{mode or 'main'}"
        self.fields: dict[str, Field] = {}
        self.choices: dict[str, Any] = {}       # one-of group name -> its Radio
        self.editors: dict[str, Any] = {}       # field -> its line view (HTML)
        self.slots: list[tuple[Any, Any, Any]] = []

    # ------------------------------------------------------------------------------------------- layout
    def build(self, copy_from: RecipeTab | None = None) -> None:
        with gr.Tab(self.title, id=self.prefix, elem_id=f"tab-{self.prefix}"):
            with gr.Row():
                with gr.Column(scale=1):
                    labels = [m.label for m in self.models]
                    self.model = gr.Dropdown(labels, value=labels[0], label="Model", interactive=len(labels) > 1,
                                             elem_id=f"{self.prefix}-model")
                    self.copy = None
                    if copy_from is not None:
                        self.copy = gr.Button(f"Use the {copy_from.title} tab's inputs", size="sm")
                    groups, settings = input_groups(self.options)
                    ordered = ([g for g in groups if self._is_mode_group(g)]
                               + [g for g in groups if not self._is_mode_group(g)])
                    for group in ordered:
                        self._group(group)
                    with gr.Accordion("Settings", open=True):
                        for i in range(0, len(settings) + 1, 2):
                            with gr.Row(equal_height=True):
                                for opt in settings[i:i + 2]:
                                    self._field(opt)
                                if i + 2 > len(settings):
                                    self.format = gr.Dropdown(list(FORMATS), value="wav", label="Format",
                                                              info="audio file format", elem_id=f"{self.prefix}-format")
                with gr.Column(scale=1):
                    with gr.Row():
                        self.run = gr.Button("Generate", variant="primary", elem_id=f"{self.prefix}-generate")
                        self.stop = gr.Button("Cancel", variant="stop", elem_id=f"{self.prefix}-cancel")
                    self.status = gr.Markdown("", elem_id=f"{self.prefix}-status", min_height=70)
                    self.unfinished = self.resume = None
                    if self.mode is None:  # one list per recipe: a saved job resumes with its own request
                        with gr.Accordion("Unfinished jobs", open=False):
                            choices = self._unfinished_choices()
                            self.unfinished = gr.Dropdown(choices, value=choices[0][1] if choices else None,
                                                          label="stopped by a crash or a restart; resumes from "
                                                          "the saved state", elem_id=f"{self.prefix}-unfinished")
                            with gr.Row():
                                self.refresh = gr.Button("Refresh", size="sm", elem_id=f"{self.prefix}-refresh")
                                self.resume = gr.Button("Resume", size="sm", elem_id=f"{self.prefix}-resume")
                    for i in range(self.service.max_outputs):  # each output: player and files, its spectrogram
                        with gr.Row(equal_height=False):
                            with gr.Column(min_width=240):
                                audio = gr.Audio(type="filepath", interactive=False, visible=False,
                                                 show_download_button=True, label=f"output {i + 1}",
                                                 elem_id=f"{self.prefix}-audio-{i}")
                                files = gr.File(file_count="multiple", interactive=False, visible=False,
                                                label="audio and manifest", elem_id=f"{self.prefix}-files-{i}")
                            picture = gr.Image(type="filepath", interactive=False, visible=False, show_label=False,
                                               min_width=240, elem_id=f"{self.prefix}-picture-{i}")
                        self.slots.append((audio, picture, files))
        self._wire(copy_from)

    def _is_mode_group(self, group: Group) -> bool:
        return self.mode is not None and any(o.tab == self.mode for o in group.options)

    def _group(self, group: Group) -> None:
        with gr.Group():
            gr.Markdown(f"**{group.title[:1].upper() + group.title[1:]}**", padding=True)
            if group.one_of:
                first = group.options[0].field
                self.choices[group.name] = gr.Radio([(label_of(o), o.field) for o in group.options], value=first,
                                                    label=group.title,
                                                    show_label=False, elem_id=f"{self.prefix}-{_slug(group.title)}")
            for opt in group.options:
                with gr.Column(visible=not group.one_of or opt.field == group.options[0].field) as box:
                    if group.one_of and opt.kind == "flag":
                        gr.Markdown(opt.help, padding=True)
                        self.fields[opt.field] = Field(opt, None, box)
                    else:
                        self._field(opt, box)
            if group.one_of:
                boxes = [self.fields[o.field].box for o in group.options]
                fields = [o.field for o in group.options]
                self.choices[group.name].change(lambda picked: [gr.update(visible=f == picked) for f in fields],
                                                self.choices[group.name], boxes, queue=False)
            self._mode_picture(group)

    def _field(self, opt: Option, box: Any = None) -> None:
        default = initial_value(opt, self.defaults.get(opt.field))
        label, info, elem_id = label_of(opt), opt.help, f"{self.prefix}-{opt.field}"
        if opt.kind == "text_file":
            component = gr.Textbox(value=default, label=label, info=info, lines=12 if opt.editor else 6,
                                   max_lines=40, elem_id=elem_id, placeholder=_placeholder(opt))
            with gr.Row():
                upload = gr.UploadButton(f"Open a {label} file", size="sm", file_types=[".lrc", ".txt"],
                                         elem_id=f"{elem_id}-open")
                fill = gr.Button(opt.fill_label or "fill", size="sm", elem_id=f"{elem_id}-fill") if opt.fills else None
            upload.upload(lambda f, what=label: _read_upload(f, what), upload, component)
            if opt.editor == "lrc":
                self.editors[opt.field] = gr.HTML("", elem_id=f"{elem_id}-lines")
            if fill is not None:
                self.fields[opt.field] = Field(opt, component, box)
                self._fills = getattr(self, "_fills", []) + [(opt, fill)]
                return
        elif opt.kind == "path":
            component = gr.Audio(type="filepath", sources=["upload", "microphone"], label=f"{label}: {info}",
                                 elem_id=elem_id)
        elif opt.kind in ("int", "float") and default is None:  # empty = the request's (or model's) default
            component = gr.Textbox(label=label, info=info, placeholder="default", elem_id=elem_id, max_lines=1)
        elif opt.kind in ("int", "float"):
            component = gr.Number(value=default, label=label, info=info, precision=0 if opt.kind == "int" else None,
                                  elem_id=elem_id, minimum=1 if opt.field == "batch" else None,
                                  maximum=self.service.max_outputs if opt.field == "batch" else None)
        elif opt.kind == "flag":
            component = gr.Checkbox(value=bool(default), label=label, info=info, elem_id=elem_id)
        elif opt.kind == "choice":
            component = gr.Dropdown([DEFAULT_CHOICE, *opt.choices], value=default, label=label, info=info,
                                    elem_id=elem_id)
        elif opt.kind == "mapping":
            component = gr.Textbox(label=label, info=f"{info} (one name=value a line)", lines=2, elem_id=elem_id)
        else:  # text, spans
            component = gr.Textbox(value=default, label=label, info=info, lines=1, max_lines=6, elem_id=elem_id,
                                   placeholder=_placeholder(opt))
        self.fields[opt.field] = Field(opt, component, box)

    def _mode_picture(self, group: Group) -> None:
        """A song to edit with spans to regenerate: its waveform with the spans marked (a group holding a path and
        a spans option)."""
        paths = [o for o in group.options if o.kind == "path"]
        spans = [o for o in group.options if o.kind == "spans"]
        if not (paths and spans):
            return
        picture = gr.Image(type="filepath", interactive=False, label="the song with the spans to regenerate",
                           elem_id=f"{self.prefix}-spans-picture")
        song, marks = self.fields[paths[0].field].component, self.fields[spans[0].field].component
        opt = spans[0]

        def draw(path: str | None, text: str | None) -> Any:
            from .pictures import marked_waveform

            if not path:
                return None
            try:
                parsed = field_value(opt, text) or []
            except RequestError:
                parsed = []
            key = hashlib.sha256(f"{path}|{text}".encode()).hexdigest()[:12]
            target = self.service.out_root / "pictures" / f"{Path(path).stem}_{key}.png"
            try:
                return str(marked_waveform(path, target, parsed))
            except Exception:  # an unreadable upload: the check says why; no picture
                log.exception("drawing %s failed", path)
                return None

        for trigger in (song.change, marks.change):
            trigger(draw, [song, marks], picture, trigger_mode="always_last")

    # ------------------------------------------------------------------------------------------- events
    @property
    def inputs(self) -> list[Any]:
        """The components a check or a run reads, in a fixed order: model, one-of choices, fields."""
        return ([self.model] + list(self.choices.values())
                + [f.component for f in self.fields.values() if f.component is not None])

    def arguments(self, values: dict[str, Any], model: str | None = None,
                  chosen: dict[str, str] | None = None) -> list[Any]:
        """The positional values of `inputs` for an API call: fields by name, one-of choices by group name."""
        out = [model or self.models[0].label]
        out += [(chosen or {}).get(name, self._first(name)) for name in self.choices]
        for f in self.fields.values():
            if f.component is not None:
                out.append(values.get(f.option.field, initial_value(f.option, self.defaults.get(f.option.field))))
        return out

    def _first(self, group_name: str) -> str:
        return next(o.field for o in self.options if o.group == group_name)

    def _read(self, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """(model label, request data) from the values of `inputs`."""
        values = list(values)
        label = values.pop(0)
        chosen = {name: values.pop(0) for name in self.choices}
        raw = {f.option.field: values.pop(0) for f in self.fields.values() if f.component is not None}
        return label, request_data(self.options, raw, chosen)

    def _lines(self, outcome: Outcome, values: Sequence[Any]) -> list[Any]:
        """The line views of the editors: the text's lines with what validation says."""
        out = []
        raw = dict(zip([f.option.field for f in self.fields.values() if f.component is not None],
                       list(values)[1 + len(self.choices):], strict=True))
        chosen = dict(zip(self.choices, list(values)[1:1 + len(self.choices)], strict=True))
        for name in self.editors:
            notes = [n for n in outcome.notes if n.field == name]
            group = self.fields[name].option.group
            # another field of its one-of group is picked (plain lyrics): show the lines validation made of it
            text = (raw.get(name) or "") if chosen.get(group, name) == name else ""
            rows = lrc_rows(text, notes) if text.strip() or notes else []
            title = "Lines" if text.strip() else "Lines as timed"
            out.append(rows_html(rows, title) if rows else "")
        return out

    def _wire(self, copy_from: RecipeTab | None) -> None:
        inputs, editors = self.inputs, list(self.editors.values())
        slot_outputs = [c for slot in self.slots for c in slot]

        def check(*values: Any) -> list[Any]:
            try:
                label, data = self._read(values)
            except RequestError as err:
                return [status_markdown(Outcome(False, str(err)))] + ["" for _ in editors]
            outcome = self.service.check(label, data)
            return [status_markdown(outcome, "Ready to generate")] + self._lines(outcome, values)

        def check_event(*values: Any) -> Any:  # one output takes the value itself, not a list of one
            out = check(*values)
            return out if editors else out[0]

        def generate(request: gr.Request, progress=gr.Progress(), *values: Any) -> list[Any]:  # noqa: B008
            fmt = values[-1]
            values = values[:-1]
            try:
                label, data = self._read(values)
            except RequestError as err:
                outcome = Outcome(False, str(err))
            else:
                outcome = self.service.generate(label, data, _session(request), fmt, progress=reporter(progress))
            return [self._status(outcome)] + self._lines(outcome, values) + self._slot_updates(outcome)

        def cancel(request: gr.Request) -> str:
            n = self.service.cancel(_session(request))
            return "**Cancelling** (the job stops at its next step)" if n else "No job of this page is running."

        check_outputs = [self.status] + editors
        for component in inputs:
            event = component.input if hasattr(component, "input") else component.change
            event(check_event, inputs, check_outputs, trigger_mode="always_last", show_progress="hidden",
                  concurrency_id="check", concurrency_limit=4)
        for choice in self.choices.values():
            choice.change(check_event, inputs, check_outputs, trigger_mode="always_last", show_progress="hidden",
                          concurrency_id="check", concurrency_limit=4)
        self.model.change(check_event, inputs, check_outputs, show_progress="hidden", api_name=f"{self.prefix}_check",
                          concurrency_id="check", concurrency_limit=4)
        self.run.click(generate, inputs + [self.format], check_outputs + slot_outputs,
                       api_name=f"{self.prefix}_generate", concurrency_id="generate",
                       concurrency_limit=self.service.max_jobs, show_progress="full")
        self.stop.click(cancel, None, self.status, api_name=f"{self.prefix}_cancel", queue=False)
        for opt, button in getattr(self, "_fills", []):
            self._wire_fill(opt, button)
        if self.unfinished is not None:
            self._wire_unfinished([self.status] + slot_outputs)
        if copy_from is not None:
            self._wire_copy(copy_from)

    @staticmethod
    def _status(outcome: Outcome) -> str:
        """The status line of a run: its message with the folder the outputs went to."""
        return status_markdown(outcome, outcome.message + (f" ({outcome.folder})" if outcome.folder else ""))

    def _slot_updates(self, outcome: Outcome) -> list[Any]:
        """Each output slot: its player, spectrogram and files, hidden when the outcome has no item for it."""
        updates: list[Any] = []
        for i in range(len(self.slots)):
            item = outcome.items[i] if i < len(outcome.items) else None
            updates += [gr.update(value=str(item.audio) if item else None, visible=item is not None,
                                  label=item.audio.name if item else None),
                        gr.update(value=str(item.picture) if item and item.picture else None,
                                  visible=bool(item and item.picture)),
                        gr.update(value=[str(item.audio), str(item.manifest)] if item else None,
                                  visible=item is not None)]
        return updates

    def _unfinished_choices(self) -> list[tuple[str, str]]:
        return [(job.describe(), job.name) for job in self.service.unfinished(self.recipe)]

    def _wire_unfinished(self, outputs: list[Any]) -> None:
        """Refresh lists the saved jobs of this tab's recipe; Resume finishes the picked one into its own folder."""

        def refresh() -> Any:
            choices = self._unfinished_choices()
            return gr.update(choices=choices, value=choices[0][1] if choices else None)

        self.refresh_unfinished = refresh

        def resume(name: str | None, request: gr.Request, progress=gr.Progress()) -> list[Any]:  # noqa: B008
            outcome = (self.service.resume(name, _session(request), progress=reporter(progress)) if name
                       else Outcome(False, "pick an unfinished job first (Refresh lists them)"))
            return [self._status(outcome)] + self._slot_updates(outcome)

        self.refresh.click(refresh, None, self.unfinished, api_name=f"{self.prefix}_unfinished", queue=False)
        self.resume.click(resume, self.unfinished, outputs, api_name=f"{self.prefix}_resume",
                          concurrency_id="generate", concurrency_limit=self.service.max_jobs,
                          show_progress="full").then(refresh, None, self.unfinished, queue=False)

    def _wire_fill(self, opt: Option, button: Any) -> None:
        """The fill button: the request with this field, validated; the target field of the result into its editor
        (and the target picked in its one-of group)."""
        target = self.fields.get(opt.fills)
        if target is None or target.component is None:
            return
        group = next((g for g in self.choices if any(o.field == opt.fills and o.group == g for o in self.options)),
                     None)
        inputs = self.inputs

        def fill(*values: Any) -> list[Any]:
            try:
                return filled(*values)
            except RequestError as err:
                return [gr.update(), gr.update(), f'<span class="tk-status-error">**Error:** {err}</span>']

        def filled(*values: Any) -> list[Any]:
            label, data = self._read(values)
            raw = list(values)[1 + len(self.choices):]
            named = dict(zip([f.option.field for f in self.fields.values() if f.component is not None], raw,
                             strict=True))
            data = {k: v for k, v in data.items() if not _same_group(self.options, k, opt.field)}
            value = field_value(opt, named.get(opt.field))
            if value is None:
                return [gr.update(), gr.update(), f"**Error:** give the {label_of(opt).lower()} first"]
            data[opt.field] = value
            text, message = self.service.fill(label, data, opt.fills)
            if text is None:
                return [gr.update(), gr.update(), f'<span class="tk-status-error">**Error:** {message}</span>']
            return [text, opt.fills if group else gr.update(),
                    f"**{label_of(opt)} timed into the {label_of(target.option)} editor**"]

        outputs = [target.component] + ([self.choices[group]] if group else []) + [self.status]

        def run(*values: Any) -> list[Any]:
            out = fill(*values)
            return out if group else [out[0], out[2]]

        button.click(run, inputs, outputs, api_name=f"{self.prefix}_{opt.field}_fill")

    def _wire_copy(self, other: RecipeTab) -> None:
        shared = [name for name in self.fields if name in other.fields and self.fields[name].component is not None
                  and other.fields[name].component is not None]
        groups = [g for g in self.choices if g in other.choices]
        sources = [other.choices[g] for g in groups] + [other.fields[n].component for n in shared]
        targets = [self.choices[g] for g in groups] + [self.fields[n].component for n in shared]
        self.copy.click(lambda *v: list(v), sources, targets, queue=False)


def reporter(progress: Any) -> Any:
    """A job's stages (waiting, sampling, decoding, writing) as the page's progress bar."""

    def report(stage: str, done: int, total: int) -> None:
        if stage == "waiting":
            progress(0.0, desc=f"waiting: {done} job(s) ahead")
        elif stage == "sampling":
            progress(0.9 * done / max(total, 1), desc=f"sampling {done}/{total}")
        else:
            progress(0.9 + 0.1 * done / max(total, 1), desc=stage)

    return report


def input_groups(options: Sequence[Option]) -> tuple[list[Group], list[Option]]:
    """(the groups of inputs, the settings): options of the default groups are settings unless they are what the
    request is about (text and files), which go into an "input" group of their own."""
    groups, settings = [], []
    for group in groups_of(options):
        if group.name not in SETTINGS_GROUPS:
            groups.append(group)
            continue
        content = tuple(o for o in group.options if o.kind in CONTENT_KINDS and group.name != "output")
        if content:
            groups.append(Group("input", content))
        settings += [o for o in group.options if o not in content]
    return groups, settings


def _read_upload(path: str | None, what: str) -> Any:
    if not path:
        return gr.update()
    try:
        return read_text(path, what)
    except RequestError as err:
        raise gr.Error(str(err)) from None


def _same_group(options: Sequence[Option], a: str, b: str) -> bool:
    groups = {o.field: o.group for o in options}
    return groups.get(a) is not None and groups.get(a) == groups.get(b) and groups[a].endswith("(one of)")


def _placeholder(opt: Option) -> str | None:
    if opt.editor == "lrc":
        return "[00:00.00]first line\n[00:04.50]second line"
    if opt.kind == "spans":
        return "10:20, 45:-1   (seconds; -1 = start or end)"
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _session(request: Any) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def build_ui(service: Service, compare_folders: Sequence[str] = (), title: str = "toolkit") -> gr.Blocks:
    """The Blocks of the app (not launched); `blocks.toolkit_tabs` maps each tab's prefix to its RecipeTab."""
    tabs: dict[str, RecipeTab] = {}
    groups = by_recipe(list(service.models.values()))
    names = [models[0].recipe_cls.output_name for models in groups.values()]
    with gr.Blocks(title=title, theme=theme(), css=CSS, analytics_enabled=False) as blocks:
        gr.Markdown(f"## {title}: " + ", ".join(f"{n} ({r})" for n, r in zip(names, groups, strict=True)))
        with gr.Tabs():
            for recipe, models in groups.items():
                name = models[0].recipe_cls.output_name
                main_title = name.capitalize() + (f" ({recipe})" if names.count(name) > 1 else "")
                main = RecipeTab(service, recipe, models, None, main_title)
                main.build()
                tabs[main.prefix] = main
                for mode in tabs_of(main.request_type):
                    shared = sum(mode in tabs_of(m[0].request_type) for m in groups.values()) > 1
                    tab = RecipeTab(service, recipe, models, mode, mode.capitalize() + (f" ({recipe})" if shared
                                                                                        else ""))
                    tab.build(copy_from=main)
                    tabs[tab.prefix] = tab
            compare_tab(service, [str(f) for f in compare_folders])
        for tab in tabs.values():  # a page opened later lists what is unfinished then
            if tab.unfinished is not None:
                blocks.load(tab.refresh_unfinished, None, tab.unfinished, queue=False)
    blocks.toolkit_tabs = tabs
    return blocks
