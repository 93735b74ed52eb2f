"""The error types that describe bad input to a generation front end (printed as one line, never a traceback);
anything else is a bug and keeps its traceback."""

from __future__ import annotations


def user_errors() -> tuple[type[BaseException], ...]:
    from ..adapters import AdapterError
    from ..audio import AudioError
    from ..checkpoints import CheckpointError
    from ..conditioners.g2p.languages import UnsupportedLanguageError
    from ..conditioners.scalar_time import TimeConditionError
    from ..conditioners.style_common import StyleError
    from ..conditions.spec import ConditionConfigError
    from ..config import ConfigError
    from ..lrc import LrcError
    from ..models.requests import RequestError
    from ..optional import MissingDependencyError
    from ..registry import RegistryError
    from ..weights import WeightsMismatchError

    return (AdapterError, RequestError, AudioError, CheckpointError, UnsupportedLanguageError, TimeConditionError,
            StyleError, ConditionConfigError, ConfigError, LrcError, MissingDependencyError, RegistryError,
            WeightsMismatchError, FileNotFoundError)
