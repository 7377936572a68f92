"""The SSO client's failures, kept apart so pages can catch them without loading authlib."""

from __future__ import annotations


class OidcError(Exception):
    """The provider or a token failed a check; `reason` is a short machine word for the audit trail."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ProviderUnavailable(OidcError):
    """The provider did not answer, answered slowly, or answered nonsense."""
