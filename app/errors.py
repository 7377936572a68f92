"""Domain errors and the one exception handler: problem details for the API, friendly pages for people."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from sqlalchemy.exc import IntegrityError

from app.i18n import translate

log = logging.getLogger("telework.errors")


class DomainError(Exception):
    """A rule a person broke; the key names a message in the catalogs."""

    status_code = 400

    def __init__(
        self,
        key: str,
        *,
        status_code: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(key)
        self.key = key
        self.params = params
        self.errors = errors or []
        if status_code is not None:
            self.status_code = status_code


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, key: str, *, retry_after: int, **params: Any) -> None:
        super().__init__(key, **params)
        self.retry_after = retry_after


_MSGSPEC_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"unknown field `(?P<field>[^`]+)`"), "error.unknown_field"),
    (re.compile(r"length <= (?P<n>\d+)"), "error.too_long"),
    (re.compile(r"length >= (?P<n>\d+)"), "error.too_short"),
    (re.compile(r"Object missing required field `(?P<field>[^`]+)`"), "error.missing_field"),
    (re.compile(r"Expected `(?P<type>[^`]+)`, got `(?P<got>[^`]+)`"), "error.wrong_type"),
    (re.compile(r"Expected `(?P<type>[^`]+)`"), "error.wrong_type"),
    (re.compile(r"Invalid enum value"), "error.invalid_choice"),
    (re.compile(r"(?i)malformed|invalid json|JSON is"), "error.malformed_json"),
    (re.compile(r"<= (?P<n>-?\d+)"), "error.too_large"),
    (re.compile(r">= (?P<n>-?\d+)"), "error.too_small"),
]


_MALFORMED = re.compile(
    r"(?i)malformed|invalid json|JSON is|decode|truncated|trailing characters|invalid character"
)


def _humanise(locale: str, message: str) -> str:
    for pattern, key in _MSGSPEC_PATTERNS:
        m = pattern.search(message)
        if m:
            return translate(locale, key, **m.groupdict())
    return translate(locale, "error.invalid_value")


def _field_of(item: dict[str, Any]) -> str:
    key = item.get("key") or ""
    message = str(item.get("message", ""))
    at = re.search(r"at `\$\.?([^`]*)`", message)
    if at and at.group(1):
        return at.group(1)
    m = re.search(r"field `([^`]+)`", message)
    return m.group(1) if m else str(key)


def field_errors(locale: str, exc: Exception) -> list[dict[str, str]]:
    """Per-field messages for a form, from msgspec validation or a domain error."""
    if isinstance(exc, DomainError):
        text = translate(locale, exc.key, **exc.params)
        return [{"field": str(exc.params.get("field", "")), "message": text}]
    message = str(exc)
    return [{"field": _field_of({"message": message}), "message": _humanise(locale, message)}]


def describe(request: Request[Any, Any, Any], exc: Exception) -> tuple[int, str, str, list[dict[str, Any]]]:
    """Status, title, human detail and per-field errors for any exception, in the request's language."""
    from app.web import request_locale

    locale = request_locale(request)
    errors: list[dict[str, Any]] = []
    if isinstance(exc, DomainError):
        status = exc.status_code
        detail = translate(locale, exc.key, **exc.params)
        errors = [
            {**e, "message": translate(locale, e["message"], **e.get("params", {}))} if "message" in e else e
            for e in exc.errors
        ]
    elif isinstance(exc, ValidationException):
        status = 400
        extra = exc.extra if isinstance(exc.extra, list) else []
        for item in extra:
            if isinstance(item, dict):
                errors.append(
                    {"field": _field_of(item), "message": _humanise(locale, str(item.get("message")))}
                )
        if not errors and exc.detail:
            errors.append({"field": "", "message": _humanise(locale, str(exc.detail))})
        detail = translate(locale, "error.validation") + (
            " " + " / ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
            if errors
            else ""
        )
    elif isinstance(exc, NotAuthorizedException):
        status, detail = 401, translate(locale, "error.sign_in_required")
    elif isinstance(exc, PermissionDeniedException):
        status = 403
        detail = translate(locale, "error.csrf" if "CSRF" in str(exc.detail) else "error.forbidden")
    elif isinstance(exc, IntegrityError):
        status, detail = 409, translate(locale, "error.conflict")
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        key = f"error.http_{status}"
        detail = translate(locale, key)
        if status == 400 and _MALFORMED.search(str(exc.detail)):
            detail = translate(locale, "error.validation") + " " + translate(locale, "error.malformed_json")
        elif detail == key:
            detail = str(exc.detail)
    else:
        status, detail = 500, translate(locale, "error.internal")
    title = translate(locale, f"error.title_{status}")
    if title == f"error.title_{status}":
        title = translate(locale, "error.title_default")
    return status, title, detail, errors


def wants_json(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/health", "/schema", "/auth/sso/backchannel")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, title, detail, errors = describe(request, exc)
    if status >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    headers: dict[str, str] = {}
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if wants_json(request):
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        if errors:
            body["errors"] = errors
        return Response(body, status_code=status, media_type="application/problem+json", headers=headers)
    if status == 401 and request.method in {"GET", "HEAD"}:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='')}", status_code=303)
    from app.web import page_context

    return Template(
        "error.html",
        context={
            **page_context(request),
            "status": status,
            "title": title,
            "detail": detail,
            "errors": errors,
        },
        status_code=status,
        headers=headers,
    )
