"""The proxy's one error hierarchy; the server renders each as OpenAI's error body.

    ProxyError                       status  type
    ├── InvalidRequest               400     invalid_request_error
    ├── AuthenticationFailed         401     authentication_error
    ├── PermissionDenied             403     permission_error
    ├── NotFound                     404     invalid_request_error (code model_not_found, ...)
    ├── RequestTimeout               408     invalid_request_error (the body arrived too slowly)
    ├── PayloadTooLarge              413     invalid_request_error
    ├── RateLimited                  429     rate_limit_error
    ├── UpstreamError                502*    upstream_error   (*or the upstream's 4xx but 401/403)
    │   └── UpstreamTimeout          504     timeout_error
    └── InternalError                500     server_error
"""

from __future__ import annotations

import reprlib
from typing import Any

__all__ = [
    "AuthenticationFailed",
    "InternalError",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProxyError",
    "RateLimited",
    "RequestTimeout",
    "UpstreamError",
    "UpstreamTimeout",
    "shown",
]

_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 60, 60


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short (a client's value can be megabytes or
    nested a thousand deep)."""
    return _SHOWN.repr(value)


class ProxyError(Exception):
    """An error with an HTTP status and OpenAI's ``{"error": {...}}`` body."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


class InvalidRequest(ProxyError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class AuthenticationFailed(ProxyError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class PermissionDenied(ProxyError):
    status, type, code = 403, "permission_error", "forbidden"


class NotFound(ProxyError):
    status, type, code = 404, "invalid_request_error", "not_found"


class RequestTimeout(ProxyError):
    status, type, code = 408, "invalid_request_error", "request_timeout"


class PayloadTooLarge(ProxyError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(ProxyError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class UpstreamError(ProxyError):
    """The upstream model failed; ``status`` is 502 unless the upstream's own status is kept."""

    status, type, code = 502, "upstream_error", "upstream_error"


class UpstreamTimeout(UpstreamError):
    status, type, code = 504, "timeout_error", "upstream_timeout"


class InternalError(ProxyError):
    status, type, code = 500, "server_error", "internal_error"
