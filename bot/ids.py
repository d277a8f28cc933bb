"""Every identifier shared between the Block Kit builders and the listeners.

Builders put these ids into blocks; listeners are registered on them. Keeping them in one place
means a renamed button cannot silently stop working.
"""

from __future__ import annotations

import re

COMMAND = "/shepherd"

# Global shortcut that opens the intake modal.
SHORTCUT_NEW = "shepherd_new"

# Modal callback ids.
VIEW_INTAKE = "shepherd_intake"
VIEW_QUESTIONNAIRE = "shepherd_questionnaire"
VIEW_REASON = "shepherd_decision_reason"
VIEW_EVIDENCE = "shepherd_evidence"
VIEW_EXCEPTION = "shepherd_exception"
VIEW_EXTEND = "shepherd_extend_time_box"
VIEW_STOP = "shepherd_stop"
VIEW_OPERATIONS_REVIEW = "shepherd_operations_review"

# Buttons and menus (action_id). Values carry the initiative ref or the review id.
ACTION_OPEN_QUESTIONNAIRE = "open_questionnaire"  # value: ref
ACTION_SUBMIT_REVIEW = "submit_review"  # value: ref
ACTION_APPROVE = "review_approve"  # value: review id
ACTION_REJECT = "review_reject"  # value: review id
ACTION_REQUEST_CHANGES = "review_request_changes"  # value: review id
ACTION_VIEW_EVIDENCE = "review_view_evidence"  # value: review id
ACTION_FEEDBACK_HELPFUL = "feedback_helpful"  # value: feedback key
ACTION_FEEDBACK_UNHELPFUL = "feedback_unhelpful"  # value: feedback key
ACTION_HOME_PAGE = "home_page"  # value: page number
ACTION_NOOP_LINK = "link_button"  # buttons that only open a URL still send an action
ACTION_EXTEND_TIME_BOX = "extend_time_box"  # value: ref
ACTION_STOP_INITIATIVE = "stop_initiative"  # value: ref
ACTION_OPEN_OPERATIONS_REVIEW = "open_operations_review"  # value: ref

DECISION_ACTIONS = (ACTION_APPROVE, ACTION_REJECT, ACTION_REQUEST_CHANGES)

# Input blocks: one per question; every input's action_id is ANSWER_ACTION.
QUESTION_BLOCK_PREFIX = "q:"
ANSWER_ACTION = "answer"
NAME_BLOCK = "meta:name"
REASON_BLOCK = "meta:reason"
LINK_URL_BLOCK = "meta:link_url"
LINK_TITLE_BLOCK = "meta:link_title"
EXTEND_UNTIL_BLOCK = "meta:extend_until"

REF_PATTERN = re.compile(r"\b([A-Z]{2,5}-\d{4,})\b")
# A public (C...) or private (G...) channel id, as SHEPHERD_REGISTRY_CHANNEL should hold, not a name.
CHANNEL_ID_PATTERN = re.compile(r"^[CG][A-Z0-9]{2,}$")


def question_block_id(question_id: str) -> str:
    return f"{QUESTION_BLOCK_PREFIX}{question_id}"


def question_id_of(block_id: str) -> str | None:
    return block_id[len(QUESTION_BLOCK_PREFIX) :] if block_id.startswith(QUESTION_BLOCK_PREFIX) else None
