"""Fixtures for the gates domain: small inline pipelines, a fake unit of work, a fixed clock."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from gates.loader import CompiledPipeline, parse_pipeline
from tests.gates.fakes import FakeUnitOfWork

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

OWNER = "UOWNER"
SUBMITTER = "USUBMIT"
SPONSOR = "USPONSOR"
RISK_1, RISK_2, RISK_3 = "URISK1", "URISK2", "URISK3"
DPO = "UDPO"
RISK_AND_DPO = "URISKDPO"

TWO_GATES = """
version: 1
stages: [idea, poc, pilot]
roles:
  sponsor: {label: Sponsor, slack_users: [USPONSOR]}
  risk: {label: Risk, slack_users: [URISK1, URISK2, URISK3, URISKDPO]}
  dpo: {label: Data protection officer, slack_users: [UDPO, URISKDPO]}
gates:
  - id: intake
    from: idea
    to: poc
    time_box_days: 30
    questions:
      - {id: problem, label: 'What problem does it solve?', type: text, required: true}
      - {id: personal_data, label: 'Does it use personal data?', type: yes_no, required: true}
      - id: dpia
        label: Link to the privacy impact assessment
        type: url
        required_if: answers.personal_data == "yes"
      - {id: budget, label: Budget in euros, type: number, validation: {min: 0}}
    criteria:
      - id: problem_stated
        rule: size(answers.problem) >= 3
        explain: The problem has to be stated.
    approvals:
      - {role: sponsor, min: 1}
      - {role: dpo, min: 1, when: 'answers.personal_data == "yes"'}
  - id: pilot
    from: poc
    to: pilot
    allow_exceptions: true
    questions:
      - id: success
        label: Did the PoC meet its success criteria?
        type: choice
        options: [yes, partly, no]
        required: true
    criteria:
      - id: success_met
        rule: answers.success in ["yes", "partly"]
        explain: The PoC has to show its hypotheses held, at least in part.
    approvals:
      - {role: risk, min: 2}
      - {role: sponsor, min: 1}
"""


def build(text: str, name: str = "test.yaml") -> CompiledPipeline:
    """Compile pipeline YAML written inline in a test."""
    return parse_pipeline(textwrap.dedent(text), name)


@pytest.fixture
def two_gates() -> CompiledPipeline:
    """A three-stage pipeline: intake (sponsor, dpo if personal data) then pilot (2 x risk, sponsor)."""
    return build(TWO_GATES)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    """An empty in-memory unit of work."""
    return FakeUnitOfWork()
