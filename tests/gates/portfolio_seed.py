"""A small portfolio on the default pipeline whose figures are computed by hand in the tests.

Stages: idea -> poc -> pilot -> production -> operations; time boxes (days) idea 30, poc 90,
pilot 120, production 180. Day 0 is 2026-01-01 00:00 UTC; "now" is day 151 (2026-06-01).

- AI-0001 A: registered day 0, intake approved day 10, pilot gate approved day 40; in pilot, active.
- AI-0002 B: registered day 0, changes requested day 15 ("Add a sponsor"), intake approved day 20;
  in poc, active.
- AI-0003 C: registered day 100, rejected day 125 ("Problem statement is vague."), changes
  requested day 140 ("problem statement  is VAGUE"); in idea, active.
- AI-0004 D: registered day 0, intake approved day 30, retired in poc on day 60.
- AI-0005 E: registered day 130, in idea, on hold.
- AI-0006 F: registered day 125, submitted day 145 (open), one approval so far on day 146.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gates.lifecycle import Decision, DecisionKind, Initiative, Requirement, Review, ReviewStatus, Status

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = DAY0 + timedelta(days=151)


def day(n: float) -> datetime:
    return DAY0 + timedelta(days=n)


def _initiative(
    ref: str,
    created: float,
    stage: str,
    entered: float,
    status: Status = Status.ACTIVE,
    reason: str | None = None,
) -> Initiative:
    return Initiative(
        ref=ref,
        name=f"Initiative {ref}",
        owner_id=f"UOWN{ref[-1]}",
        stage=stage,
        created_at=day(created),
        stage_entered_at=day(entered),
        status=status,
        status_reason=reason,
        updated_at=day(max(created, entered)),
    )


def _review(
    ref: str,
    gate: str,
    from_stage: str,
    to_stage: str,
    submitted: float,
    status: ReviewStatus,
    decisions: list[tuple[DecisionKind, float, str | None]],
) -> Review:
    closed = None if status is ReviewStatus.OPEN else day(decisions[-1][1])
    return Review(
        initiative_ref=ref,
        gate_id=gate,
        from_stage=from_stage,
        to_stage=to_stage,
        submitted_by=f"UOWN{ref[-1]}",
        owner_id=f"UOWN{ref[-1]}",
        submitted_at=day(submitted),
        pipeline_version="test",
        evidence_hash="0" * 64,
        requirements=(Requirement("sponsor", 1), Requirement("risk", 1)),
        status=status,
        decisions=[
            Decision(f"UAPPROVER{n}", kind, "sponsor" if n == 0 else "risk", reason, day(at))
            for n, (kind, at, reason) in enumerate(decisions)
        ],
        closed_at=closed,
    )


A, R, C = DecisionKind.APPROVE, DecisionKind.REJECT, DecisionKind.REQUEST_CHANGES


def seed_initiatives() -> list[Initiative]:
    return [
        _initiative("AI-0001", 0, "pilot", 40),
        _initiative("AI-0002", 0, "poc", 20),
        _initiative("AI-0003", 100, "idea", 100),
        _initiative("AI-0004", 0, "poc", 30, Status.RETIRED, "No budget"),
        _initiative("AI-0005", 130, "idea", 130, Status.ON_HOLD, "Waiting for data"),
        _initiative("AI-0006", 125, "idea", 125, Status.IN_REVIEW),
    ]


def seed_reviews() -> list[Review]:
    approved = ReviewStatus.APPROVED
    return [
        _review("AI-0001", "intake", "idea", "poc", 8, approved, [(A, 9, None), (A, 10, None)]),
        _review("AI-0001", "pilot", "poc", "pilot", 35, approved, [(A, 39, None), (A, 40, None)]),
        _review(
            "AI-0002", "intake", "idea", "poc", 12, ReviewStatus.CHANGES_REQUESTED, [(C, 15, "Add a sponsor")]
        ),
        _review("AI-0002", "intake", "idea", "poc", 18, approved, [(A, 19, None), (A, 20, None)]),
        _review(
            "AI-0003",
            "intake",
            "idea",
            "poc",
            120,
            ReviewStatus.REJECTED,
            [(R, 125, "Problem statement is vague.")],
        ),
        _review(
            "AI-0003",
            "intake",
            "idea",
            "poc",
            135,
            ReviewStatus.CHANGES_REQUESTED,
            [(C, 140, "problem statement  is VAGUE")],
        ),
        _review("AI-0004", "intake", "idea", "poc", 25, approved, [(A, 28, None), (A, 30, None)]),
        _review("AI-0006", "intake", "idea", "poc", 145, ReviewStatus.OPEN, [(A, 146, None)]),
    ]
