"""Exception types. Each carries one sentence saying what went wrong and where."""


class KgqaError(Exception):
    """Base class: the CLI prints the message and exits non-zero."""


class TripleFormatError(KgqaError):
    """A line of a triples file could not be parsed."""

    def __init__(self, path: str, line_no: int, reason: str, line: str = "") -> None:
        shown = f": {line.strip()[:80]!r}" if line.strip() else ""
        super().__init__(f"{path}, line {line_no}: {reason}{shown}")
        self.path = path
        self.line_no = line_no


class GraphError(KgqaError):
    """The graph cannot be opened or queried."""


class ModelError(KgqaError):
    """A model is missing or cannot be loaded."""


class InputError(KgqaError):
    """A question or an input file is unusable."""


class LLMError(KgqaError):
    """The language model could not give a usable answer."""


class LLMUnavailable(LLMError):
    """The LLM server cannot be reached or did not answer in time."""


class LLMTimeout(LLMUnavailable):
    """The LLM server took longer than the timeout."""


class LLMResponseError(LLMError):
    """The LLM server answered with an HTTP error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LLMOutputError(LLMError):
    """The model's output could not be read as what was asked for."""
