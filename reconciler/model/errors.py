"""The one exception tree of reconciler.

    ReconcilerError                  base of everything reconciler raises on purpose
    ├── ManifestError                bad input; carries every Diagnostic found at once
    ├── ProviderError                raised by providers, SDK errors mapped at the edge
    │   ├── TransientError           retry later (throttling, timeouts); has retry_after
    │   └── PermanentError           retrying will not help (bad request, auth, quota)
    │       └── CapacityError        the cloud has no room for this resource
    ├── PlanError                    a plan cannot be made or applied (protect, stale plan)
    │   └── StalePlanError           the world changed since the saved plan was made
    └── ExecutionError               apply finished with failed actions

The CLI turns every ReconcilerError into a clear message and exit code 1; anything
else escaping is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of all errors reconciler raises deliberately."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the input, located precisely."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ManifestError(ReconcilerError):
    """The manifests are invalid; ``diagnostics`` lists every problem found."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(
            diagnostics, key=lambda d: (d.file, d.line, d.column, d.path, d.message)
        )
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ProviderError(ReconcilerError):
    """A cloud call failed. ``cloud`` names the Cloud object."""

    def __init__(self, message: str, cloud: str = "") -> None:
        self.cloud = cloud
        super().__init__(f"{cloud}: {message}" if cloud else message)


class TransientError(ProviderError):
    """A failure that may succeed when retried after ``retry_after`` seconds."""

    def __init__(self, message: str, cloud: str = "", retry_after: float = 1.0) -> None:
        self.retry_after = retry_after
        super().__init__(message, cloud)


class PermanentError(ProviderError):
    """A failure that retrying will not fix; ``reason`` is a short machine word."""

    def __init__(self, message: str, cloud: str = "", reason: str = "Permanent") -> None:
        self.reason = reason
        super().__init__(message, cloud)


class CapacityError(PermanentError):
    """The cloud (or one of its quotas) has no room for the requested resource."""

    def __init__(self, message: str, cloud: str = "") -> None:
        super().__init__(message, cloud, reason="CapacityExhausted")


class PlanError(ReconcilerError):
    """A plan cannot be made or applied as asked."""


class StalePlanError(PlanError):
    """The observed world differs from the one the saved plan was computed against."""


class ExecutionError(ReconcilerError):
    """Apply finished but some actions failed permanently."""
