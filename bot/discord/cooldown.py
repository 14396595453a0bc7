"""Question rate limits: a sliding-window cooldown per user and a cap on questions in flight per guild.

Pure logic with an injectable clock, so it is tested without sleeping. Every way of asking
(/ask, a mention, Find sources) goes through one :class:`QuestionLimiter`, so the limits hold
however people ask.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

if TYPE_CHECKING:
    from bot.config import DiscordSettings

Clock = Callable[[], float]

# When a guild is at its cap we cannot know when a slot frees; answers take a second or two.
BUSY_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Refused:
    """Why a question was not taken, and how long to wait before asking again."""

    reason: Literal["cooldown", "busy"]
    retry_after: float

    @property
    def wait_seconds(self) -> int:
        """Whole seconds to wait, never zero (a user told "0 seconds" would retry at once)."""
        return max(1, math.ceil(self.retry_after))

    @property
    def message(self) -> str:
        """The polite one-line reply shown only to the asker."""
        seconds = self.wait_seconds
        unit = "second" if seconds == 1 else "seconds"
        if self.reason == "cooldown":
            return f"You're asking quickly; please wait {seconds} {unit} before asking again."
        return f"I'm answering a lot of questions here right now; please try again in {seconds} {unit}."


@dataclass
class Ticket:
    """An admitted question: holds one in-flight slot for its guild until released."""

    _limiter: QuestionLimiter
    _key: object
    _released: bool = field(default=False)

    def release(self) -> None:
        """Free the slot; safe to call twice."""
        if not self._released:
            self._released = True
            self._limiter._release(self._key)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class QuestionLimiter:
    """Admit a question, or say why not: per-user cooldown first, then the guild's in-flight cap."""

    def __init__(
        self,
        *,
        questions: int,
        per_seconds: float,
        guild_max_inflight: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self.questions = max(1, questions)
        self.per_seconds = max(0.0, per_seconds)
        self.guild_max_inflight = max(1, guild_max_inflight)
        self._clock = clock
        self._asked: dict[int, deque[float]] = {}
        self._inflight: dict[object, int] = {}

    @classmethod
    def from_settings(cls, settings: DiscordSettings, *, clock: Clock = time.monotonic) -> QuestionLimiter:
        return cls(
            questions=settings.cooldown_questions,
            per_seconds=settings.cooldown_seconds,
            guild_max_inflight=settings.guild_max_inflight,
            clock=clock,
        )

    def _recent(self, user_id: int, now: float) -> deque[float]:
        """The user's question times still inside the window (older ones are forgotten)."""
        times = self._asked.get(user_id)
        if times is None:
            return deque()
        while times and times[0] <= now - self.per_seconds:
            times.popleft()
        if not times:
            del self._asked[user_id]
        return times

    def retry_after(self, user_id: int) -> float:
        """Seconds until ``user_id`` may ask again (0 when they may ask now)."""
        now = self._clock()
        times = self._recent(user_id, now)
        if len(times) < self.questions:
            return 0.0
        return times[len(times) - self.questions] + self.per_seconds - now

    def inflight(self, guild_id: int | None, user_id: int) -> int:
        """Questions being answered right now for this guild (DMs count per user)."""
        return self._inflight.get(self._guild_key(guild_id, user_id), 0)

    @staticmethod
    def _guild_key(guild_id: int | None, user_id: int) -> object:
        return ("guild", guild_id) if guild_id is not None else ("dm", user_id)

    def admit(self, user_id: int, guild_id: int | None) -> Ticket | Refused:
        """Take the question (counting it against the user's window) or refuse it without counting."""
        wait = self.retry_after(user_id)
        if wait > 0:
            return Refused("cooldown", wait)
        key = self._guild_key(guild_id, user_id)
        if self._inflight.get(key, 0) >= self.guild_max_inflight:
            return Refused("busy", BUSY_RETRY_SECONDS)
        self._inflight[key] = self._inflight.get(key, 0) + 1
        self._asked.setdefault(user_id, deque()).append(self._clock())
        return Ticket(self, key)

    def _release(self, key: object) -> None:
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)
