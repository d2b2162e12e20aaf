"""User-facing errors: one clear message, no traceback wall."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of an error's message (a long one, e.g. from Ray or torch, fits one line of
    ours), or its type's name when the message is empty."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class ConfigError(ValueError):
    """Invalid user input (experiment file, scenario option, CLI flag, checkpoint path).

    ``problems`` lists every issue found as ``(dotted.field.name, what is allowed)``,
    so a user sees all mistakes at once. The CLI prints ``str(err)`` and exits 2.
    """

    def __init__(self, problems: list[tuple[str, str]] | str, *, source: str | None = None):
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = f" in {self.source}" if self.source else ""
        lines = [f"invalid configuration{where}:"]
        for field, message in self.problems:
            lines.append(f"  - {field}: {message}" if field else f"  - {message}")
        return "\n".join(lines)


class RayUnavailableError(RuntimeError):
    """Ray could not be started here (the local Ray's startup failed every attempt). Not the
    user's input, so not a ``ConfigError``: the CLI prints the message and exits 3."""
