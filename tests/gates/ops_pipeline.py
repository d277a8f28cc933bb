"""A small pipeline with time boxes, reminders, escalation contacts and periodic operations reviews."""

from __future__ import annotations

from datetime import datetime

from gates.lifecycle import Initiative, Status
from gates.loader import CompiledPipeline
from tests.gates.conftest import build
from tests.gates.fakes import FakeUnitOfWork

OWNER = "UOWNER"
SPONSOR = "USPONSOR"
OPS = "UOPS"
BOSS = "UBOSS"
OPS_LEAD = "UOPSLEAD"
OUTSIDER = "UOUTSIDER"

OPS_PIPELINE = """
version: 1
stages: [idea, poc, operations]
roles:
  sponsor: {slack_users: [USPONSOR], escalation_contact: UBOSS}
  risk: {slack_users: [URISK]}
  operations: {slack_users: [UOPS], escalation_contact: UOPSLEAD}
gates:
  - id: intake
    from: idea
    to: poc
    time_box_days: 30
    review_reminder_days: 3
    review_escalation_days: 7
    questions:
      - {id: problem, label: Problem, type: text, required: true}
    approvals:
      - {role: sponsor}
      - {role: risk}
  - id: handover
    from: poc
    to: operations
    time_box_days: 60
    questions:
      - {id: ops_owner, label: Operations owner, type: user, required: true}
    approvals:
      - {role: operations}
operations:
  review_every_days: 90
  overdue_after_days: 14
  role: operations
  questions:
    - {id: value, label: 'Still delivering value?', type: yes_no, required: true}
    - {id: incidents, label: Incidents since the last review, type: number, required: true, validation: {min: 0}}
    - id: incident_notes
      label: What happened?
      type: long_text
      show_if: answers.incidents > 0
      required_if: answers.incidents > 0
"""


def ops_pipeline() -> CompiledPipeline:
    return build(OPS_PIPELINE, "ops.yaml")


def seed(
    uow: FakeUnitOfWork,
    ref: str,
    stage: str,
    entered: datetime,
    status: Status = Status.ACTIVE,
    extended_until: datetime | None = None,
) -> Initiative:
    """Store an initiative that entered ``stage`` at ``entered``."""
    initiative = Initiative(
        ref=ref,
        name=f"System {ref}",
        owner_id=OWNER,
        sponsor_id=SPONSOR,
        stage=stage,
        created_at=entered,
        stage_entered_at=entered,
        status=status,
        extended_until=extended_until,
    )
    with uow:
        uow.initiatives.add(initiative)
        uow.commit()
    return initiative
