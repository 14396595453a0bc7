"""The per-member sliding-window rate limit, on a fake clock."""

from __future__ import annotations

import pytest

from bot.config import DiscordSettings
from bot.discord.cooldown import QuestionLimiter, Refused


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, *, questions: int = 3, per_seconds: float = 10.0) -> QuestionLimiter:
    return QuestionLimiter(questions=questions, per_seconds=per_seconds, clock=clock)


def test_questions_up_to_the_limit_are_admitted(clock: FakeClock) -> None:
    lim = limiter(clock)
    assert [lim.admit(1) for _ in range(3)] == [None, None, None]


def test_one_question_too_many_is_refused_with_the_wait(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        lim.admit(1)
        clock.advance(1)
    refused = lim.admit(1)
    assert isinstance(refused, Refused)
    assert refused.retry_after == pytest.approx(7.0)  # the first question leaves the window at t+10


def test_window_slides_as_the_oldest_question_expires(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        lim.admit(1)
        clock.advance(1)
    clock.advance(7)  # exactly 10 s after the first question
    assert lim.admit(1) is None
    assert isinstance(lim.admit(1), Refused)


def test_refused_questions_do_not_extend_the_cooldown(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1)
    lim.admit(1)
    for _ in range(5):
        clock.advance(1)
        lim.admit(1)
    clock.advance(5)  # 10 s after the only admitted question
    assert lim.admit(1) is None


def test_users_have_separate_cooldowns(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1)
    lim.admit(1)
    assert lim.admit(2) is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.2, "wait 1 second "), (1.0, "wait 1 second "), (6.1, "wait 7 seconds ")],
)
def test_cooldown_message_says_when_to_ask_again_in_whole_seconds(retry_after: float, expected: str) -> None:
    message = Refused(retry_after).message
    assert expected in message and message.endswith("before asking again.")
    assert "\n" not in message


def test_retry_after_is_zero_for_a_fresh_user(clock: FakeClock) -> None:
    assert limiter(clock).retry_after(42) == 0.0


def test_limiter_reads_its_limits_from_settings(clock: FakeClock) -> None:
    settings = DiscordSettings(cooldown_questions=5, cooldown_seconds=30.0)
    lim = QuestionLimiter.from_settings(settings, clock=clock)
    assert (lim.questions, lim.per_seconds) == (5, 30.0)
