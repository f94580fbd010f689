"""The errors chatrec raises on purpose.

Every message says what went wrong *and* how to fix it. The UI turns these into friendly
``gr.Error`` popups; the CLI prints them without a traceback. Anything else escaping is a bug.
"""
from __future__ import annotations


class ChatrecError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class ConfigError(ChatrecError):
    """A setting is malformed (bad flag value, bad env var)."""


class CatalogError(ChatrecError):
    """The catalog file cannot be used. ``problems`` lists each bad row as 'file:line: why'."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        shown = "\n".join(f"  {p}" for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(message + (f"\n{shown}{more}" if shown else ""))


class ModelLoadError(ChatrecError):
    """The language model or embedder could not be loaded."""


class GenerationError(ChatrecError):
    """The language model failed while producing a reply."""


class InputError(ChatrecError):
    """A user message cannot be processed (empty, too long, ...)."""


class StoreError(ChatrecError):
    """The database cannot be opened or written."""
