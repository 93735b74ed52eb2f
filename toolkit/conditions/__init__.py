"""Conditions routed by configuration: which conditioner turns which field into which backbone input.

A recipe config's `conditions:` section names, per condition, its conditioner, where its value comes from
(a manifest / dataset field, and a request value), the backbone input it binds to and its drop group
(docs/architecture.md, "Conditions"). `spec` reads that section, `span` describes the frames a value is
prepared for, `condition_set` builds the conditioners, binds them to a backbone's declared inputs and routes
values and per-item drops at every backbone call.
"""

from .condition_set import ConditionSet, RoutedBackbone
from .span import Span
from .spec import ConditionSpec, parse_conditions

__all__ = ["ConditionSet", "ConditionSpec", "RoutedBackbone", "Span", "parse_conditions"]
