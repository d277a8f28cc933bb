"""The message that offers the next gate's questionnaire once a stage has advanced."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.blocks.text import plain, section
from gates.lifecycle import Initiative


def next_gate_offer(
    initiative: Initiative, gate_title: str, text: str, *, offered: bool = True
) -> dict[str, Any]:
    """``text`` (mrkdwn) with a button that opens the next questionnaire; none once not
    ``offered`` (the initiative was retired since: a form opened then could not be saved)."""
    if not offered:
        return {"text": text, "blocks": [section(text)]}
    button = {
        "type": "button",
        "action_id": ids.ACTION_OPEN_QUESTIONNAIRE,
        "text": plain(f"Open the {gate_title} questionnaire", 75),
        "value": initiative.ref,
        "style": "primary",
    }
    return {"text": text, "blocks": [section(text), {"type": "actions", "elements": [button]}]}
