"""Pure Block Kit builders: domain data in, Slack JSON out (no client, no database, no clock).

Modules: ``text`` (escaping, truncation, limits), ``inputs`` (a question as an input block),
``modals``, ``messages``, ``home``. Listeners import the builders from here.
"""

from bot.blocks.home import home_view
from bot.blocks.messages import (
    ask_busy,
    ask_failed,
    ask_placeholder,
    ask_reply,
    ask_restarted,
    decision_notice,
    error_message,
    help_message,
    initiative_card,
    no_such_initiatives,
    readiness_blocks,
    readiness_line,
    review_outcome,
    review_progress,
    review_request,
    status_message,
    which_initiative,
)
from bot.blocks.modals import (
    evidence_modal,
    exception_modal,
    intake_modal,
    questionnaire_modal,
    questionnaire_pages,
    reason_modal,
    refused_modal,
)

__all__ = [
    "ask_busy",
    "ask_failed",
    "ask_placeholder",
    "ask_reply",
    "ask_restarted",
    "decision_notice",
    "error_message",
    "evidence_modal",
    "exception_modal",
    "help_message",
    "home_view",
    "initiative_card",
    "intake_modal",
    "no_such_initiatives",
    "questionnaire_modal",
    "questionnaire_pages",
    "readiness_blocks",
    "readiness_line",
    "reason_modal",
    "refused_modal",
    "review_outcome",
    "review_progress",
    "review_request",
    "status_message",
    "which_initiative",
]
