"""The Compare tab: a comparison report's table beside one player per variant for the picked request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from ..models.requests import RequestError
from .compare import open_report, servable_copy
from .service import Service

MAX_VARIANTS = 12


def compare_tab(service: Service, folders: Sequence[str]) -> None:
    with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
        gr.Markdown("Open a report folder of `egs/compare/run.sh` (`<exp>/report`, or the experiment folder) and "
                    "listen to one request across the variants.")
        with gr.Row():
            folder = gr.Dropdown(list(folders), value=folders[0] if folders else None, allow_custom_value=True,
                                 label="Report folder", scale=4, elem_id="compare-folder")
            opened = gr.Button("Open", scale=1, elem_id="compare-open")
        status = gr.Markdown("", elem_id="compare-status")
        with gr.Row():
            with gr.Column(scale=3):
                table = gr.Markdown("", elem_id="compare-table")
            with gr.Column(scale=2):
                request = gr.Dropdown([], label="Request", elem_id="compare-request")
                players = [gr.Audio(type="filepath", interactive=False, visible=False, show_download_button=True,
                                     elem_id=f"compare-audio-{i}")
                           for i in range(MAX_VARIANTS)]
    cache = service.out_root / "compare"

    def listen(path: str, name: str | None) -> list[Any]:
        try:
            report = open_report(path)
        except RequestError:
            return [gr.update(visible=False)] * MAX_VARIANTS
        songs = report.songs.get(name or "", {})
        shown = [(v, songs[v]) for v in report.variants if v in songs][:MAX_VARIANTS]
        out = [gr.update(value=str(servable_copy(p, cache)), label=v, visible=True) for v, p in shown]
        return out + [gr.update(value=None, visible=False)] * (MAX_VARIANTS - len(out))

    def open_folder(path: str | None) -> list[Any]:
        if not path:
            return ["Pick or type a report folder.", "", gr.update(choices=[], value=None)] + listen("", None)
        try:
            report = open_report(path)
        except RequestError as err:
            return ([f'<span class="tk-status-error">**Error:** {err}</span>', "", gr.update(choices=[], value=None)]
                    + listen("", None))
        first = report.requests[0] if report.requests else None
        note = (f"{len(report.variants)} variants, {len(report.requests)} requests with audio "
                f"({report.folder})")
        return [note, report.table, gr.update(choices=report.requests, value=first)] + listen(path, first)

    opened.click(open_folder, folder, [status, table, request] + players, api_name="compare_open")
    request.change(listen, [folder, request], players, api_name="compare_listen")
