"""Helpers for the Block Kit tests: a small pipeline with every question type, domain objects,
and checks that run Slack's limits through slack_sdk's own block and view models."""

from __future__ import annotations

import functools
import json
import textwrap
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from gates.lifecycle import Initiative, Requirement, Review
from gates.loader import CompiledPipeline, parse_pipeline

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
OWNER = "UOWNER"
SPONSOR = "USPONSOR"
RISK_1, RISK_2 = "URISK1", "URISK2"

ALL_TYPES = """
version: 1
stages: [idea, poc, pilot]
roles:
  sponsor: {label: Business sponsor, slack_users: [USPONSOR]}
  risk: {label: AI risk, slack_users: [URISK1, URISK2]}
gates:
  - id: intake
    from: idea
    to: poc
    time_box_days: 30
    questions:
      - id: problem
        label: What problem does it solve?
        help: One or two sentences a sponsor would recognise.
        placeholder: The problem in plain words
        type: text
        required: true
        validation: {max_length: 500}
      - {id: approach, label: Describe the approach, type: long_text}
      - {id: budget, label: Budget in euros, type: number, validation: {min: 0, max: 1000000}}
      - {id: accuracy, label: Target accuracy, type: percent, validation: {min: 0, max: 100}}
      - {id: data_class, label: Data classification, type: choice, options: [public, internal, confidential]}
      - {id: channels, label: Channels, type: multi_choice, options: [web, mobile, email, slack]}
      - id: personal_data
        label: Does it use personal data?
        type: yes_no
        required: true
        policy_refs: [privacy]
      - id: dpia
        label: Link to the privacy impact assessment
        type: url
        show_if: answers.personal_data == "yes"
        required_if: answers.personal_data == "yes"
      - {id: start, label: Start date, type: date}
      - {id: tech_owner, label: Technical owner, type: user}
    criteria:
      - {id: problem_stated, rule: size(answers.problem) >= 3, explain: The problem has to be stated.}
      - id: budget_known
        rule: answers.budget > 0
        blocking: false
        explain: A budget helps the sponsor decide.
    risk_tier:
      - {tier: high, when: 'answers.personal_data == "yes"'}
      - {tier: low, when: "true"}
    approvals:
      - {role: sponsor, min: 1}
  - id: pilot
    from: poc
    to: pilot
    label: Pilot
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

TYPES = ["text", "long_text", "number", "percent", "choice", "multi_choice", "yes_no", "date", "user", "url"]


def all_types() -> CompiledPipeline:
    return parse_pipeline(textwrap.dedent(ALL_TYPES), "all-types.yaml")


@functools.cache
def huge_gate(
    count: int = 150, label_length: int = 1900, options: int = 100, long_ids: bool = False, help: bool = True
) -> CompiledPipeline:
    """A pipeline whose intake gate has ``count`` questions of every type, with long labels, long
    help, and choice options longer than Slack's option text and value limits; ``long_ids``: ids
    of the most characters a pipeline allows (64); ``help``: False for none. Cached: compiling about a megabyte of YAML
    takes a second, and the pipeline is immutable."""
    questions = []
    for index in range(count):
        kind = TYPES[index % len(TYPES)]
        question: dict[str, Any] = {
            "id": f"q{index:03d}" + ("_" + "x" * 59 if long_ids else ""),
            "label": (f"Question {index} " + "about the initiative's governance " * 80)[:label_length],
            "help": "Explain with evidence. " * 150 if help else None,
            "type": kind,
            "required": index % 3 == 0,
        }
        if kind in ("choice", "multi_choice"):
            question["options"] = [f"option {n:03d} " + "x" * (60 if n % 2 else 160) for n in range(options)]
        questions.append(question)
    data = {
        "version": 1,
        "stages": ["idea", "poc"],
        "roles": {"sponsor": {"label": "Business sponsor", "slack_users": [SPONSOR]}},
        "gates": [
            {
                "id": "intake",
                "from": "idea",
                "to": "poc",
                "label": "A very long gate title for the intake of initiatives",
                "questions": questions,
                "approvals": [{"role": "sponsor", "min": 1}],
            }
        ],
    }
    return parse_pipeline(json.dumps(data), "huge.yaml")


def initiative(
    name: str = "Invoice triage assistant", stage: str = "poc", ref: str = "AI-0007"
) -> Initiative:
    return Initiative(ref=ref, name=name, owner_id=OWNER, stage=stage, created_at=NOW, sponsor_id=SPONSOR)


def review(review_id: int = 42, gate_id: str = "pilot", **extra: Any) -> Review:
    values: dict[str, Any] = {
        "initiative_ref": "AI-0007",
        "gate_id": gate_id,
        "from_stage": "poc",
        "to_stage": "pilot",
        "submitted_by": OWNER,
        "owner_id": OWNER,
        "submitted_at": NOW,
        "pipeline_version": "1-abcdef123456",
        "evidence_hash": "e" * 64,
        "requirements": (Requirement("risk", 2), Requirement("sponsor", 1)),
        "id": review_id,
        "tier": "medium",
    }
    values.update(extra)
    return Review(**values)


def _check_blocks(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, f"unknown block type: {block.get('type')}"
        parsed.validate_json()
        parsed.to_dict()  # validates nested elements and text objects
    block_ids = Counter(b["block_id"] for b in blocks if "block_id" in b)
    assert all(n == 1 for n in block_ids.values()), f"duplicate block ids: {block_ids}"
    for block in blocks:
        # Slack refuses a block whose elements repeat an action_id ("duplicate action_id").
        action_ids = Counter(e["action_id"] for e in _elements(block) if "action_id" in e)
        assert all(n == 1 for n in action_ids.values()), f"duplicate action ids in a block: {action_ids}"
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(len(e.get("text", "")) <= 3000 for e in block["elements"])
        if block["type"] == "section" and "fields" in block:
            assert all(len(f["text"]) <= 2000 for f in block["fields"])
        if block["type"] == "input" and "hint" in block:
            assert len(block["hint"]["text"]) <= 2000
        for element in _elements(block):
            if element.get("type") == "radio_buttons":
                assert len(element["options"]) <= 10
            if "initial_value" in element:
                assert len(element["initial_value"]) <= 3000
            assert len(element.get("options", [])) <= 100 and len(element.get("option_groups", [])) <= 100
            groups = element.get("option_groups", [])
            for option in [*element.get("options", []), *(o for group in groups for o in group["options"])]:
                assert len(option["text"]["text"]) <= 75 and len(option["value"]) <= 150


def _elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    if block["type"] == "input":
        return [block["element"]]
    if block["type"] == "actions":
        return list(block["elements"])
    if "accessory" in block:
        return [block["accessory"]]
    return []


def assert_valid_view(view: dict[str, Any]) -> None:
    """The view passes slack_sdk's model checks and Slack's size limits."""
    model = View(**view)
    model.validate_json()
    model.to_dict()
    assert 1 <= len(view["blocks"]) <= 100
    _check_blocks(view["blocks"])
    assert len(json.dumps(view, ensure_ascii=False).encode("utf-8")) < 250_000
    assert len(view.get("private_metadata", "")) <= 3000
    if view["type"] == "modal":
        for key in ("title", "submit", "close"):
            if key in view:
                assert 1 <= len(view[key]["text"]) <= 24
        if any(b["type"] == "input" for b in view["blocks"]):
            assert "submit" in view


def assert_valid_message(message: dict[str, Any]) -> None:
    """The message has fallback text and at most 50 blocks that pass slack_sdk's model checks."""
    assert message["text"].strip()
    assert len(message["text"]) <= 40_000
    assert 1 <= len(message["blocks"]) <= 50
    _check_blocks(message["blocks"])


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every piece of text in ``blocks``, joined, for asserting on what people read."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def find_block(blocks: list[dict[str, Any]], block_id: str) -> dict[str, Any]:
    return next(b for b in blocks if b.get("block_id") == block_id)


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks for e in _elements(b) if e.get("type") == "button"]
