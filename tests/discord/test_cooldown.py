"""Per-user sliding-window cooldown and per-guild in-flight cap, on a fake clock."""

from __future__ import annotations

import pytest

from bot.config import DiscordSettings
from bot.discord.cooldown import BUSY_RETRY_SECONDS, QuestionLimiter, Refused, Ticket


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


def limiter(
    clock: FakeClock,
    *,
    questions: int = 3,
    per_seconds: float = 10.0,
    inflight: int = 8,
) -> QuestionLimiter:
    return QuestionLimiter(
        questions=questions,
        per_seconds=per_seconds,
        guild_max_inflight=inflight,
        clock=clock,
    )


def ask(lim: QuestionLimiter, user: int = 1, guild: int | None = 100) -> Ticket | Refused:
    """Admit and immediately finish a question (only the cooldown is left behind)."""
    outcome = lim.admit(user, guild)
    if isinstance(outcome, Ticket):
        outcome.release()
    return outcome


# -- cooldown -------------------------------------------------------------------------------


def test_questions_up_to_the_limit_are_admitted(clock: FakeClock) -> None:
    lim = limiter(clock)
    assert all(isinstance(ask(lim), Ticket) for _ in range(3))


def test_one_question_too_many_is_refused_with_the_wait(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        ask(lim)
        clock.advance(1)
    refused = ask(lim)
    assert isinstance(refused, Refused)
    assert refused.reason == "cooldown"
    assert refused.retry_after == pytest.approx(7.0)  # the first question leaves the window at t+10


def test_window_slides_as_the_oldest_question_expires(clock: FakeClock) -> None:
    lim = limiter(clock)
    for _ in range(3):
        ask(lim)
        clock.advance(1)
    clock.advance(7)  # exactly 10 s after the first question
    assert isinstance(ask(lim), Ticket)
    assert isinstance(ask(lim), Refused)


def test_refused_questions_do_not_extend_the_cooldown(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1)
    ask(lim)
    for _ in range(5):
        clock.advance(1)
        ask(lim)
    clock.advance(5)  # 10 s after the only admitted question
    assert isinstance(ask(lim), Ticket)


def test_users_have_separate_cooldowns(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1)
    ask(lim, user=1)
    assert isinstance(ask(lim, user=2), Ticket)


def test_cooldown_follows_the_user_across_guilds(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1)
    ask(lim, user=1, guild=100)
    assert isinstance(ask(lim, user=1, guild=200), Refused)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(0.2, "wait 1 second "), (1.0, "wait 1 second "), (6.1, "wait 7 seconds ")],
)
def test_cooldown_message_gives_whole_seconds(retry_after: float, expected: str) -> None:
    message = Refused("cooldown", retry_after).message
    assert expected in message
    assert "\n" not in message


def test_retry_after_is_zero_for_a_fresh_user(clock: FakeClock) -> None:
    assert limiter(clock).retry_after(42) == 0.0


# -- in-flight cap --------------------------------------------------------------------------


def test_guild_cap_refuses_once_full(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=2)
    held = [lim.admit(user, 100) for user in (1, 2)]
    refused = lim.admit(3, 100)
    assert all(isinstance(t, Ticket) for t in held)
    assert isinstance(refused, Refused) and refused.reason == "busy"
    assert refused.retry_after == BUSY_RETRY_SECONDS
    assert f"{int(BUSY_RETRY_SECONDS)} seconds" in refused.message


def test_finishing_a_question_frees_its_slot(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=1)
    first = lim.admit(1, 100)
    assert isinstance(first, Ticket)
    first.release()
    assert isinstance(lim.admit(2, 100), Ticket)


def test_ticket_used_as_context_manager_releases_on_error(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=1)
    ticket = lim.admit(1, 100)
    assert isinstance(ticket, Ticket)
    with pytest.raises(RuntimeError), ticket:
        raise RuntimeError("answer failed")
    assert lim.inflight(100, 1) == 0


def test_releasing_twice_frees_only_one_slot(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=2)
    first = lim.admit(1, 100)
    second = lim.admit(2, 100)
    assert isinstance(first, Ticket) and isinstance(second, Ticket)
    first.release()
    first.release()
    assert lim.inflight(100, 1) == 1


def test_guilds_have_separate_caps(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=1)
    lim.admit(1, 100)
    assert isinstance(lim.admit(2, 200), Ticket)


def test_direct_messages_are_capped_per_user(clock: FakeClock) -> None:
    lim = limiter(clock, inflight=1)
    lim.admit(1, None)
    assert isinstance(lim.admit(2, None), Ticket)


def test_busy_refusal_does_not_use_up_the_cooldown(clock: FakeClock) -> None:
    lim = limiter(clock, questions=1, inflight=1)
    held = lim.admit(1, 100)
    assert isinstance(lim.admit(2, 100), Refused)
    assert isinstance(held, Ticket)
    held.release()
    assert isinstance(lim.admit(2, 100), Ticket)


def test_limiter_reads_its_limits_from_settings(clock: FakeClock) -> None:
    settings = DiscordSettings(cooldown_questions=5, cooldown_seconds=30.0, guild_max_inflight=4)
    lim = QuestionLimiter.from_settings(settings, clock=clock)
    assert (lim.questions, lim.per_seconds, lim.guild_max_inflight) == (5, 30.0, 4)
