"""Outcomes cross the decode worker's pipe as what they are: same type, same fields."""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler

import pytest

from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown, SkippedByMapping

OUTCOMES = [
    Ready("OrderPlaced", "e-1", b'{"event_type":"x"}', 2, "shop-br"),
    Ready("OrderPlaced", None, b"{}", 0),  # the default account
    Ready("Custom", 17, b"{}", 0),  # an event id that is not a string
    Refused("map", "invalid_email", "email: 'a@' is not an email", "email: not an email"),
    RegistryDown("registry at http://r:8081 unreachable"),
    SkippedByMapping("drafts"),
]


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: type(o).__name__)
def test_an_outcome_pickles_back_to_its_own_type_and_fields(outcome: Outcome) -> None:
    for data in (bytes(ForkingPickler.dumps(outcome)), pickle.dumps(outcome, 2), pickle.dumps(outcome)):
        back = pickle.loads(data)
        assert type(back) is type(outcome)
        assert back == outcome and back._asdict() == outcome._asdict()


def test_a_batch_of_outcomes_pickles_back_in_order() -> None:
    back = pickle.loads(ForkingPickler.dumps(OUTCOMES))
    assert [type(o) for o in back] == [type(o) for o in OUTCOMES] and back == OUTCOMES
