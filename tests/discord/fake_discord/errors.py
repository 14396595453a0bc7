"""What the fake raises at the test and returns to the bot (Discord-shaped error bodies)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class FakeDiscordTimeout(AssertionError, TimeoutError):
    """Raised by every ``wait_*`` helper when its timeout expires."""


class FakeDiscordUsageError(ValueError):
    """The test asked for something a real Discord client could not do."""


class CommandNotAvailable(PermissionError):
    """The invoking user could not see/use the command in a real client."""


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict | None = None):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _form_error(errors: dict) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors)


class _Errors:
    """Collects validation errors in Discord's nested ``errors`` format."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_len(self, path, value, limit: int) -> None:
        if value is not None and len(value) > limit:
            self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def __bool__(self) -> bool:
        return bool(self.tree)

    def raise_if_any(self) -> None:
        if self.tree:
            raise _form_error(self.tree)
