"""The per-member rate limit: a sliding window of questions per member, for abuse, not for load.

Load is the queue's job (``bot.discord.queue``): nobody is refused because others are asking.
This only stops one member from asking faster than ``cooldown_questions`` per
``cooldown_seconds``, and tells them when they may ask again. Pure logic with an injectable
clock, so it is tested without sleeping; every way of asking (/ask, a mention, Find sources)
goes through one :class:`QuestionLimiter`, so the limit holds however people ask.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.i18n import ENGLISH, Frame

if TYPE_CHECKING:
    from bot.config import DiscordSettings

Clock = Callable[[], float]


@dataclass(frozen=True)
class Refused:
    """A member over their rate limit, and how long until they may ask again."""

    retry_after: float

    @property
    def wait_seconds(self) -> int:
        """Whole seconds to wait, never zero (a user told "0 seconds" would retry at once)."""
        return max(1, math.ceil(self.retry_after))

    @property
    def message(self) -> str:
        """The polite one-line reply shown only to the asker, saying when to ask again."""
        return self.message_in(ENGLISH)

    def message_in(self, tr: Frame) -> str:
        """:attr:`message` in the asker's language, with that language's plural of "seconds"."""
        return tr.ngettext(
            "You're asking quickly; please wait {count} second before asking again.",
            "You're asking quickly; please wait {count} seconds before asking again.",
            self.wait_seconds,
        ).format(count=self.wait_seconds)


class QuestionLimiter:
    """Admit a member's question, or say how long until they may ask again."""

    def __init__(self, *, questions: int, per_seconds: float, clock: Clock = time.monotonic) -> None:
        self.questions = max(1, questions)
        self.per_seconds = max(0.0, per_seconds)
        self._clock = clock
        self._asked: dict[int, deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: DiscordSettings, *, clock: Clock = time.monotonic) -> QuestionLimiter:
        return cls(questions=settings.cooldown_questions, per_seconds=settings.cooldown_seconds, clock=clock)

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

    def admit(self, user_id: int) -> Refused | None:
        """Count the question against the member's window, or refuse it without counting."""
        wait = self.retry_after(user_id)
        if wait > 0:
            return Refused(wait)
        self._asked.setdefault(user_id, deque()).append(self._clock())
        return None
