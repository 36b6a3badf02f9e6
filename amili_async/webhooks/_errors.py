"""The errors of webhook verification and parsing."""

from __future__ import annotations

from ..errors import AmiliError

__all__ = ["WebhookError", "WebhookSignatureError"]


class WebhookError(AmiliError):
    """A delivery that must not be trusted or cannot be read (`webhook_handler` answers 400)."""


class WebhookSignatureError(WebhookError):
    """The delivery is not authentic: bad, missing or stale signature (answered with 401)."""
