"""The authenticator's parts a request cannot show: the claims of a static token, the provider call budget."""

import asyncio

import pytest

from biothings.web.auth import Authenticator, CallBudget


@pytest.mark.parametrize("setting, token, subject", [
    (["t0ken"], "t0ken", "static"), ("a, t0ken", "t0ken", "static"), ({"t0ken": "robot"}, "t0ken", "robot")])
def test_a_static_token_is_known_by_its_subject(setting, token, subject):
    authenticator = Authenticator({"AUTH_STATIC_TOKENS": setting})
    claims = asyncio.run(authenticator.authenticate(f"Bearer {token}"))
    assert claims == {"sub": subject, "auth": "static"}


def test_the_budget_allows_its_rate_in_a_burst_then_refills_at_that_rate():
    budget = CallBudget(4)
    assert [budget.take() for _ in range(5)] == [True, True, True, True, False]
    budget.updated -= 0.25  # a quarter of a second later: one call more at 4 a second
    assert [budget.take(), budget.take()] == [True, False]


def test_a_budget_under_one_call_a_second_still_allows_one():
    budget = CallBudget(0.5)
    assert [budget.take(), budget.take()] == [True, False]
    budget.updated -= 1.0  # half a call refilled
    assert budget.take() is False
    budget.updated -= 1.0
    assert budget.take() is True


def test_no_budget_at_zero():
    budget = CallBudget(0)
    assert all(budget.take() for _ in range(1000))
