"""From what a page's inputs hold to a request's fields, by the option kinds a recipe declares (no recipe named).

A page sends strings, numbers, booleans and uploaded file paths; an unset input is None or "". Spans and
name=value pairs are parsed by the same functions the CLI uses, so a bad value gets the CLI's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..generation.requests_io import parse_mapping
from ..models.requests import Option, RequestError, parse_spans, request_options

DEFAULT_CHOICE = "model default"
ONE_OF = "(one of)"


@dataclass(frozen=True)
class Group:
    """Options shown together: a titled box, or a choice of one field (`one_of`)."""

    name: str
    options: tuple[Option, ...]

    @property
    def one_of(self) -> bool:
        return self.name.endswith(ONE_OF)

    @property
    def title(self) -> str:
        return self.name[: -len(ONE_OF)].strip() if self.one_of else self.name


def label_of(opt: Option) -> str:
    """A field's name as a page shows it (short names are acronyms: lrc -> LRC)."""
    words = opt.field.replace("_", " ")
    return words.upper() if len(opt.field) <= 3 else words[:1].upper() + words[1:]


def tab_options(request_type: type, tab: str | None) -> list[Option]:
    """The options a tab shows: every option without a tab, plus those of `tab`."""
    return [o for o in request_options(request_type) if o.tab is None or o.tab == tab]


def tabs_of(request_type: type) -> list[str]:
    """The mode tabs a request declares, in field order."""
    out: list[str] = []
    for opt in request_options(request_type):
        if opt.tab is not None and opt.tab not in out:
            out.append(opt.tab)
    return out


def groups_of(options: Sequence[Option]) -> list[Group]:
    """Options grouped by their declared group, in order of first appearance."""
    order: dict[str, list[Option]] = {}
    for opt in options:
        order.setdefault(opt.group, []).append(opt)
    return [Group(name, tuple(opts)) for name, opts in order.items()]


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def field_value(opt: Option, value: Any) -> Any:
    """One input's value as the request field takes it; None = not set (the request's default)."""
    if opt.kind == "flag":
        return True if value else None
    if blank(value):
        return None
    if opt.kind in ("int", "float"):
        try:
            number = float(str(value).strip()) if isinstance(value, str) else float(value)
        except ValueError:
            raise RequestError(f"{label_of(opt)}: {value!r} is not a number") from None
        if opt.kind == "float":
            return number
        if number != int(number):
            raise RequestError(f"{label_of(opt)} must be a whole number, got {value}")
        return int(number)
    if opt.kind == "choice":
        return None if value == DEFAULT_CHOICE else str(value)
    if opt.kind == "spans":
        return parse_spans(str(value).strip(), label_of(opt).lower())
    if opt.kind == "mapping":
        return parse_mapping([line for line in str(value).splitlines() if line.strip()])
    if opt.kind == "path":
        return str(value)
    return str(value)


def request_data(options: Sequence[Option], values: Mapping[str, Any], chosen: Mapping[str, str]) -> dict[str, Any]:
    """The request fields of a form: `values` by field, `chosen[group name]` = the field picked in a one-of group
    (the other fields of that group are left unset)."""
    data: dict[str, Any] = {}
    for group in groups_of(options):
        for opt in group.options:
            if group.one_of and chosen.get(group.name, group.options[0].field) != opt.field:
                continue
            if group.one_of and opt.kind == "flag":  # picking the flag is the value
                data[opt.field] = True
                continue
            value = field_value(opt, values.get(opt.field))
            if value is not None:
                data[opt.field] = value
    return data


def initial_value(opt: Option, default: Any) -> Any:
    """What an input shows before the user types: the request's default where it has one."""
    if opt.kind == "choice":
        return default if default in opt.choices else DEFAULT_CHOICE
    if opt.kind == "flag":
        return bool(default)
    if opt.kind in ("int", "float"):
        return default if isinstance(default, (int, float)) and not isinstance(default, bool) else None
    if opt.kind in ("text", "text_file") and isinstance(default, str):
        return default
    return None
