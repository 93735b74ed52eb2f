"""Requests from the command line and from request files, built from what a recipe's request type declares
(toolkit.models.requests.option): one flag per declared field, one JSON key per field in a request file."""

from __future__ import annotations

import argparse
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.requests import Option, RequestError, from_mapping, parse_spans, request_options

NAME_KEYS = ("id", "name")


@dataclass
class Job:
    """One request to serve: its name (file stem), the request as given, and what validation made of it."""

    name: str
    request: Any
    origin: str = "command line"
    checked: Any = None          # toolkit.models.requests.Checked
    error: str | None = None
    paths: list[Path] = field(default_factory=list)
    lora: list[Any] = field(default_factory=list)   # adapter specs ("DIR[:SCALE]" / {"path", "scale"})
    base: Path | None = None     # the folder relative adapter paths start from
    adapters: list[Any] = field(default_factory=list)  # (spec, adapter) read when the job is checked


def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text.strip()).strip("._")[:80] or "song"


def read_text(path: str | Path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"{what} file not found: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise RequestError(f"{what} file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def parse_mapping(items: list[str] | None) -> dict[str, Any]:
    """`name=value` strings (values read as YAML: numbers, lists, strings) -> a dict."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise RequestError(f"{item!r} must look like name=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


# ------------------------------------------------------------------------------------------- the parser

def add_request_options(parser: argparse.ArgumentParser, request_type: type) -> None:
    """One flag per declared option, in groups; every default is None (unset = the request's default)."""
    groups: dict[str, Any] = {}
    for opt in request_options(request_type):
        group = groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        add_option(group, opt)


def add_option(group: Any, opt: Option) -> None:
    dest = opt.field
    if opt.kind == "flag":
        group.add_argument(opt.flag, dest=dest, action="store_true", default=None, help=opt.help)
    elif opt.kind == "mapping":
        group.add_argument(opt.flag, dest=dest, action="append", metavar=opt.metavar or "NAME=VALUE", help=opt.help)
    else:
        kwargs: dict[str, Any] = {"dest": dest, "help": opt.help, "metavar": opt.metavar}
        if opt.kind == "int":
            kwargs["type"] = int
        elif opt.kind == "float":
            kwargs["type"] = float
        elif opt.kind == "choice":
            kwargs["choices"], kwargs["metavar"] = opt.choices, None
        group.add_argument(opt.flag, **kwargs)


def request_from_args(args: argparse.Namespace, request_type: type) -> Any:
    """The one request the flags describe (files read, spans and mappings parsed, a fresh seed drawn)."""
    data: dict[str, Any] = {}
    for opt in request_options(request_type):
        value = getattr(args, opt.field, None)
        if value is None:
            continue
        if opt.kind == "text_file":
            value = read_text(value, opt.field.upper() if opt.field == "lrc" else opt.field.replace("_", " "))
        elif opt.kind == "spans":
            value = parse_spans(value, opt.flag)
        elif opt.kind == "mapping":
            value = parse_mapping(value)
        data[opt.field] = value
    return with_seed(from_mapping(request_type, data), None)


def with_seed(request: Any, seed: int | None) -> Any:
    """A request without a seed gets `seed` (or a fresh one, which the manifest then records)."""
    if hasattr(request, "seed") and request.seed is None:
        request.seed = seed if seed is not None else secrets.randbelow(2 ** 31)
    return request


def cli_defaults(args: argparse.Namespace, request_type: type) -> dict[str, Any]:
    """Flags given beside --requests: defaults for every request line (files read, as for one request)."""
    defaults = {}
    for opt in request_options(request_type):
        value = getattr(args, opt.field, None)
        if value is None:
            continue
        if opt.kind == "text_file":
            value = read_text(value, opt.field)
        elif opt.kind == "spans":
            value = parse_spans(value, opt.flag)
        elif opt.kind == "mapping":
            value = parse_mapping(value)
        defaults[opt.field] = value
    return defaults


# ------------------------------------------------------------------------------------------- request files

def resolve_path(value: str, base: Path) -> str:
    """A relative path from a request file: beside the file if it exists there, else from the working directory."""
    path = Path(value).expanduser()
    if path.is_absolute() or not (base / path).exists():
        return str(path)
    return str(base / path)


def exclusive_groups(request_type: type) -> list[list[str]]:
    """The option groups whose fields exclude each other (a group named "... (one of)")."""
    groups: dict[str, list[str]] = {}
    for opt in request_options(request_type):
        if opt.group.endswith("(one of)"):
            groups.setdefault(opt.group, []).append(opt.field)
    return list(groups.values())


def request_from_line(data: Mapping[str, Any], request_type: type, base: Path, defaults: Mapping[str, Any]) -> Any:
    """One request-file object -> a request: `<field>_path` reads a text file, paths resolve beside the file,
    aliases map to their fields; CLI defaults fill what the line leaves out (a group of mutually exclusive
    fields, e.g. the style prompts, is filled only when the line sets none of them)."""
    data = dict(data)
    options = {opt.field: opt for opt in request_options(request_type)}
    for opt in options.values():
        for alias in opt.aliases:
            if alias in data:
                data[opt.field] = data.pop(alias)
        if opt.kind == "text_file":
            if f"{opt.field}_path" in data:
                data[opt.field] = read_text(resolve_path(data.pop(f"{opt.field}_path"), base), opt.field)
            value = data.get(opt.field)
            if isinstance(value, str) and "\n" not in value and value.strip().endswith((".lrc", ".txt")):
                data[opt.field] = read_text(resolve_path(value.strip(), base), opt.field)
        elif opt.kind == "path" and data.get(opt.field):
            data[opt.field] = resolve_path(str(data[opt.field]), base)
        elif opt.kind == "spans" and isinstance(data.get(opt.field), str):
            data[opt.field] = parse_spans(data[opt.field], opt.field)
    exclusive = exclusive_groups(request_type)
    grouped = {f for group in exclusive for f in group}
    for group in exclusive:
        if not any(data.get(f) for f in group):
            data.update({f: defaults[f] for f in group if f in defaults})
    for key, value in defaults.items():
        if key not in grouped:
            data.setdefault(key, value)
    return from_mapping(request_type, data)


def jobs_from_file(path: str | Path, request_type: type, defaults: Mapping[str, Any], seed: int | None,
                   lora: list[Any] | None = None) -> list[Job]:
    """One Job per non-blank line; a line that cannot become a request is a Job with its error set. Line i
    without a seed gets `seed + i` (or a fresh seed). A line's "lora" list (adapter specs, paths relative to
    the file) replaces the command line's `lora`; [] means none."""
    file = Path(path)
    text = read_text(file, "requests")
    jobs: list[Job] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        origin, name = f"{file.name} line {number}", f"item_{number:04d}"
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise RequestError("a request line must be a JSON object")
            name = slug(str(next((data.pop(k) for k in NAME_KEYS if k in data), data.get("title") or name)))
            adapters = data.pop("lora", None)
            if adapters is not None and not isinstance(adapters, list):
                raise RequestError('"lora" must be a list of adapter folders ("DIR[:SCALE]" or {"path", "scale"})')
            request = request_from_line(data, request_type, file.parent, defaults)
            jobs.append(Job(name, with_seed(request, None if seed is None else seed + len(jobs)), origin,
                            lora=list(lora or []) if adapters is None else adapters,
                            base=file.parent if adapters is not None else None))
        except (ValueError, TypeError) as err:
            message = f"not valid JSON ({err})" if isinstance(err, json.JSONDecodeError) else str(err)
            jobs.append(Job(name, None, origin, error=message))
    if not jobs:
        raise RequestError(f"the requests file {file} holds no requests (one JSON object per line)")
    return jobs
