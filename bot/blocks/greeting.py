"""The first message in a person's DM with Shepherd: what it can do, with examples to try."""

from __future__ import annotations

from typing import Any

from bot.blocks.text import context, section

# (title, question): the greeting lists the questions, Slack's agent view offers them as
# suggested prompts (``bot.manifest``), sent as written by whoever clicks one: none names an
# initiative, which would be one that does not exist or someone else's.
PROMPTS = (
    ("What a gate needs", "what do we need for the pilot gate?"),
    ("Personal data and DPIAs", "do we need a DPIA if the model only sees pseudonymised data?"),
    ("Handover sign-off", "who has to sign off the handover to operations?"),
)
EXAMPLES = tuple(question for _, question in PROMPTS)


def greeting() -> dict[str, Any]:
    text = (
        "Hi, I'm Shepherd. I help AI initiatives move from proof of concept to production: "
        "register one with `/shepherd new`, and ask me anything about a gate or our AI policies "
        "(name an initiative by its ref, like AI-0007, for its checklist)."
    )
    tries = "\n".join(f"• _{example}_" for example in EXAMPLES)
    return {
        "text": text,
        "blocks": [
            section(text),
            section(f"Try asking:\n{tries}"),
            context("Answers cite the policy documents they use."),
        ],
    }
