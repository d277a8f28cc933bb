"""The in-memory unit of work behaves like a transaction, so use-case tests can trust it."""

from __future__ import annotations

import pytest

from gates.errors import ConcurrentUpdate, ReviewAlreadyOpen, UnknownInitiative
from gates.lifecycle import Initiative, Requirement, Review, Status
from tests.gates.conftest import NOW, OWNER, SUBMITTER
from tests.gates.fakes import FakeUnitOfWork


def initiative(ref: str = "AI-0001") -> Initiative:
    return Initiative(ref=ref, name="X", owner_id=OWNER, stage="poc", created_at=NOW)


def review() -> Review:
    return Review(
        "AI-0001", "pilot", "poc", "pilot", SUBMITTER, OWNER, NOW, "1", "h", (Requirement("risk", 1),)
    )


def test_changes_without_commit_are_discarded(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.initiatives.add(initiative())
        uow.audit.append(OWNER, "x", "AI-0001", {}, NOW)
    with uow, pytest.raises(UnknownInitiative):
        uow.initiatives.get("AI-0001")
    assert uow.audit_entries == []


def test_rollback_returns_to_the_last_commit_and_the_transaction_goes_on(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.initiatives.add(initiative())
        uow.commit()
        uow.initiatives.add(initiative("AI-0002"))
        uow.rollback()
        uow.audit.append(OWNER, "kept", "AI-0001", {}, NOW)
        uow.commit()
    assert set(uow.committed.initiatives) == {"AI-0001"}
    assert uow.audit_actions == ["kept"]


def test_a_changed_object_is_stored_only_when_saved(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.initiatives.add(initiative())
        uow.commit()
    with uow:
        loaded = uow.initiatives.get("AI-0001")
        loaded.hold("pause", NOW)
        uow.commit()
    assert uow.stored_initiative("AI-0001").status is Status.ACTIVE


def test_saving_a_stale_initiative_is_a_concurrent_update(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.initiatives.add(initiative())
        uow.commit()
    with uow:
        first, second = uow.initiatives.get("AI-0001"), uow.initiatives.get("AI-0001")
        uow.initiatives.save(first)
        with pytest.raises(ConcurrentUpdate):
            uow.initiatives.save(second)


def test_a_second_open_review_for_an_initiative_is_refused(uow: FakeUnitOfWork) -> None:
    with uow:
        uow.initiatives.add(initiative())
        uow.reviews.add(review())
        with pytest.raises(ReviewAlreadyOpen, match="AI-0001"):
            uow.reviews.add(review())


def test_repositories_are_unusable_outside_a_transaction(uow: FakeUnitOfWork) -> None:
    with pytest.raises(RuntimeError):
        uow.initiatives.next_ref()
