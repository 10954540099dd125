"""ApiError: an error the API answers with a meta/v1 Status body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error; ``status()`` renders the ``Status`` object a real API server returns."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    gr = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f'{gr} "{name}" not found', {"name": name, "group": group, "kind": resource})


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    gr = f"{resource}.{group}" if group else resource
    return ApiError(409, "AlreadyExists", f'{gr} "{name}" already exists', {"name": name, "group": group, "kind": resource})


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    gr = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {gr} "{name}": the object has been modified; please apply your changes to the latest version and try again',
        {"name": name, "group": group, "kind": resource},
    )


def invalid(kind: str, name: str, group: str, causes: list[dict[str, str]]) -> ApiError:
    msg = "; ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind}{"." + group if group else ""} "{name}" is invalid: {msg}',
        {"name": name, "group": group, "kind": kind, "causes": [{"reason": "FieldValueInvalid", **c} for c in causes]},
    )
