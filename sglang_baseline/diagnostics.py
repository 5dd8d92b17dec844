"""Typed warnings: what the analysis could not resolve, where, and why.

Each kind of warning is a small class with its own message template (the pyflakes
way), so the JSON output, the summary and the tests can all refer to a kind by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Diagnostic:
    """One thing the analysis could not work out.

    ``location`` is ``models/llama.py:145`` style, relative to ``sglang/srt``
    (or the package root for files outside it); empty when not tied to a line.
    """

    kind: str
    message: str
    location: str = ""
    detail: str = ""

    def key(self) -> tuple[str, str, str]:
        return (self.location, self.kind, self.message)


# Message templates by kind.  The kind names are part of the output contract.
KINDS: dict[str, str] = {
    "syntax-error": "could not parse {what}: {why}",
    "unreadable-file": "could not read {what}: {why}",
    "unresolved-import": "import of {what} could not be resolved",
    "unresolved-name": "name {what} could not be resolved",
    "unresolved-class": "class {what} could not be resolved",
    "unresolved-call": "call to {what} could not be followed",
    "unresolved-value": "value of {what} is not known",
    "unresolved-attribute": "attribute {what} is not known",
    "symbolic-branch": "branch on {what} could not be decided; both sides kept",
    "symbolic-count": "count {what} is not known",
    "constructor-raised": "constructor of {what} raises: {why}",
    "budget-exhausted": "evaluation budget exhausted in {what}",
    "recursion-limit": "recursion too deep in {what}",
    "mro-error": "class hierarchy of {what} is inconsistent: {why}",
    "no-forward": "{what} has no forward method",
    "unknown-backend": "attention backend {what} could not be resolved: {why}",
    "unnamed-kernel": "{what} runs a kernel with no FlashInfer-Bench definition rule",
    "missing-dimension": "definition {what} needs {why}, which is not known",
    "quantization": "{what}",
    "version-difference": "{what}",
    "shared-experts-fused": "{what}",
    "not-invoked": "{what}",
    "config": "{what}",
    "source": "{what}",
}


@dataclass
class Diagnostics:
    """An ordered, de-duplicated collection of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set[tuple[str, str, str]] = field(default_factory=set, repr=False)
    limit: int = 2000
    _captures: list[list[tuple]] = field(default_factory=list, repr=False)

    def add(self, kind: str, location: str = "", detail: str = "", **fmt: str) -> None:
        for log in self._captures:  # every add, seen before or not: the log is given again elsewhere
            log.append((kind, location, detail, fmt))
        template = KINDS.get(kind, "{what}")
        try:
            message = template.format(**{"what": "", "why": "", **fmt})
        except (KeyError, IndexError):
            message = " ".join(str(v) for v in fmt.values())
        diag = Diagnostic(kind=kind, message=message, location=location, detail=detail)
        if diag.key() in self._seen or len(self.items) >= self.limit:
            return
        self._seen.add(diag.key())
        self.items.append(diag)

    def extend(self, other: Diagnostics) -> None:
        for d in other.items:
            if d.key() not in self._seen and len(self.items) < self.limit:
                self._seen.add(d.key())
                self.items.append(d)

    def capture(self) -> list[tuple]:
        """Start keeping every ``add`` in a log (for a result reused later: see ``replay``)."""
        log: list[tuple] = []
        self._captures.append(log)
        return log

    @property
    def capturing(self) -> bool:
        return bool(self._captures)

    def end_capture(self, log: list[tuple]) -> None:
        for i in range(len(self._captures) - 1, -1, -1):  # by identity: two logs may be equal
            if self._captures[i] is log:
                del self._captures[i]
                return

    def replay(self, log: Iterable[tuple]) -> None:
        for kind, location, detail, fmt in log:
            self.add(kind, location, detail, **fmt)

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.location, d.kind, d.message))

    def __len__(self) -> int:
        return len(self.items)
