"""`/shepherd ...`: new, ask, status, withdraw, hold, resume, retire, portfolio, help, roles."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import ask, blocks, ids
from bot.blocks.labels import gate_title
from bot.blocks.portfolio import portfolio_message
from bot.blocks.text import escape
from bot.bootstrap import Services
from bot.listeners.common import lazily
from gates import usecases
from gates.errors import GateError, ShepherdError
from gates.portfolio import load_portfolio

logger = logging.getLogger("shepherd.commands")

USAGE = "Try `/shepherd help`."


def subcommand(text: str) -> tuple[str, str]:
    words = (text or "").strip().split(maxsplit=1)
    if not words:
        return "help", ""
    return words[0].lower(), (words[1] if len(words) > 1 else "")


LAZY_SUBCOMMANDS = frozenset({"new", "ask", "portfolio"})
PORTFOLIO_WAIT = "Putting the portfolio together: the figures and the chart follow in a moment."
PORTFOLIO_REFUSED = (
    "The portfolio is for governance leads and role admins (SHEPHERD_GOVERNANCE_LEADS, SHEPHERD_ROLE_ADMINS)."
)


# Status changes, answered in the ack; the card, the approvers' messages and the thread follow
# through the outbox. Each: its usage, and whether it needs a reason.
STATUS_CHANGES = {
    "withdraw": ("withdraw AI-0001", False),
    "hold": ("hold AI-0001 REASON", True),
    "resume": ("resume AI-0001", False),
    "retire": ("retire AI-0001 REASON", True),
}


def needs_lazy_half(body: dict[str, Any]) -> bool:
    """A slash command's body is the command itself; matched by its body alone
    (``bot.listener_matching``)."""
    return subcommand(body.get("text", ""))[0] in LAZY_SUBCOMMANDS


class CommandListeners:
    def __init__(self, services: Services) -> None:
        self._services = services

    def register(self, app: App) -> None:
        # Only subcommands that call Slack or the LLM pay for a lazy thread; the rest are
        # answered entirely in the ack (measured: the lazy hand-off costs ~0.8 ms a command).
        app.command(ids.COMMAND, matchers=[needs_lazy_half])(
            ack=self.ack, lazy=lazily(self._services, self.later)
        )
        app.command(ids.COMMAND)(self.ack)
        app.shortcut(ids.SHORTCUT_NEW)(ack=self.ack_shortcut, lazy=lazily(self._services, self.open_intake))

    # The ack answers everything that needs no Slack call (help, status, roles) straight away;
    # anything that calls Slack (modals, the LLM) runs in the lazy half, after the response.
    def ack(self, ack: Ack, command: dict[str, Any]) -> None:
        name, rest = subcommand(command.get("text", ""))
        user = command.get("user_id", "")
        if name == "help":
            ack(**blocks.help_message())
        elif name == "status":
            ack(**self._status(user, rest.strip()))
        elif name == "roles":
            ack(text=self._roles(user, rest))
        elif name in STATUS_CHANGES:
            ack(text=self._change_status(name, user, rest))
        elif name == "portfolio":
            # Computing the figures reads every initiative: it happens after the ack.
            ack(text=PORTFOLIO_WAIT if self._services.settings.sees_portfolio(user) else PORTFOLIO_REFUSED)
        elif name == "new":
            ack()
        elif name == "ask":
            if not rest.strip():
                ack(
                    text="Ask a question after `ask`, for example: `/shepherd ask what do we need for the pilot gate?`"
                )
            else:
                ack(text="Looking into it: the answer will appear here in a moment.")
        else:
            ack(text=f"I don't know `{escape(name)}`. {USAGE}")

    def later(
        self, command: dict[str, Any], client: WebClient, respond: Respond, body: dict[str, Any]
    ) -> None:
        name, rest = subcommand(command.get("text", ""))
        if name == "new":
            self.open_intake(body, client)
        elif name == "portfolio" and self._services.settings.sees_portfolio(command.get("user_id", "")):
            figures = self._portfolio_figures(respond)
            if figures is not None:
                respond(response_type="ephemeral", **portfolio_message(figures))
                self._upload_chart(figures, command, client, respond)
        elif name == "ask" and rest.strip():
            initiative = ask.find_initiative(self._services, rest, None)
            key = f"ask:{uuid.uuid4().hex[:12]}"
            message = ask.reply(self._services, ask.clean_question(rest), initiative, key)
            # A slash command's first reply cannot be edited later, so the answer follows it.
            respond(response_type="ephemeral", **message)

    def ack_shortcut(self, ack: Ack) -> None:
        ack()

    def open_intake(self, body: dict[str, Any], client: WebClient) -> None:
        channel = body.get("channel_id") or ""
        client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.intake_modal(self._services.pipeline, private_metadata=channel),
        )

    # -- answered in the ack -----------------------------------------------------------------

    def _status(self, user: str, ref: str) -> dict[str, Any]:
        services = self._services
        pipeline = services.pipeline
        try:
            if ref:
                # One read transaction for the whole reply: it is answered inside the ack.
                view = usecases.status(pipeline, services.read_uow(), ref.upper())
                return blocks.status_message(pipeline, view.initiative, view.readiness, view.open_review)
            mine = usecases.list_initiatives(
                pipeline, services.read_uow(), services.now(), owner_id=user, limit=20
            )
        except GateError as error:
            return {"text": str(error)}
        if not mine:
            return {"text": "You own no initiatives yet. Register one with `/shepherd new`."}
        now = services.now()
        lines = [
            f"• *{i.ref}* {escape(i.name)}: {i.stage}, {i.status.value.replace('_', ' ')}"
            + (" :warning: stalled" if usecases.is_stalled(pipeline, i, now) else "")
            for i in mine
        ]
        return {"text": "Your initiatives:\n" + "\n".join(lines) + "\nDetails: `/shepherd status AI-0001`"}

    def _change_status(self, name: str, user: str, rest: str) -> str:
        services = self._services
        usage, needs_reason = STATUS_CHANGES[name]
        words = rest.split(maxsplit=1)
        ref, reason = (words[0] if words else ""), (words[1].strip() if len(words) > 1 else "")
        if not ref or (needs_reason and not reason):
            return f"Usage: `{ids.COMMAND} {usage}`" + (
                " (the reason is shown on the card)" if needs_reason else ""
            )
        ref, now, steward = ref.upper(), services.now(), services.settings.is_steward(user)
        try:
            if name == "withdraw":
                review = usecases.withdraw(services.uow(), ref, user, now)
                title = gate_title(services.pipeline, review.gate_id)
                return (
                    f"You withdrew the review of the *{escape(title)}* gate of {ref}. Its answers can "
                    "change again; submit it for review from the card when it is ready."
                )
            if name == "hold":
                usecases.hold(services.uow(), ref, user, reason, now, steward=steward)
                return (
                    f"{ref} is on hold: {escape(reason)}\n`{ids.COMMAND} resume {ref}` makes it active again."
                )
            if name == "resume":
                usecases.resume(services.uow(), ref, user, now, steward=steward)
                return f"{ref} is active again."
            usecases.retire(services.uow(), ref, user, reason, now, steward=steward)
            return f"{ref} is retired: {escape(reason)}"
        except GateError as error:
            return str(error)

    def _portfolio_figures(self, respond: Respond) -> Any:
        services = self._services
        try:
            return load_portfolio(services.pipeline, services.read_uow(), services.now())
        except ShepherdError as error:
            respond(response_type="ephemeral", text=str(error))
            return None

    def _upload_chart(
        self, figures: Any, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """Render the chart after the ack (rendering takes a fraction of a second) and share it."""
        from bot.portfolio_chart import render_png

        channel = command.get("channel_id", "")
        try:
            client.files_upload_v2(
                channel=channel,
                content=render_png(figures),
                filename=f"shepherd-portfolio-{figures.generated_at:%Y-%m-%d}.png",
                title=f"AI portfolio {figures.generated_at:%Y-%m-%d}",
                initial_comment=f"Portfolio chart requested by <@{command.get('user_id', '')}>.",
            )
        except SlackApiError as error:
            code = error.response.get("error", "unknown_error")
            logger.warning("could not upload the portfolio chart to %s: %s", channel, code)
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=f"I could not post the chart here ({code}). Invite me to this channel "
                "(`/invite @Shepherd`) and try again, or run `shepherd portfolio --png FILE`.",
            )

    def _roles(self, user: str, rest: str) -> str:
        services = self._services
        if user not in services.settings.role_admins:
            return "Only role admins can manage roles (SHEPHERD_ROLE_ADMINS)."
        words = rest.split()
        with services.read_uow() as uow:
            holders = usecases.role_holders(services.pipeline, uow)
        if not words or words[0] == "list":
            lines = [
                f"• *{role}*: {' '.join(f'<@{u}>' for u in users) or 'nobody yet'}"
                for role, users in holders.items()
            ]
            return "Role holders:\n" + "\n".join(lines) + "\nChange: `/shepherd roles set ROLE @user @user`"
        if words[0] == "set" and len(words) >= 2:
            from gates.answers import coerce
            from gates.pipeline import Question, QuestionType

            probe = Question(id="user", label="user", type=QuestionType.USER)
            try:
                users = [str(coerce(probe, w)) for w in words[2:]]
                chosen = usecases.set_role_holders(
                    services.pipeline, services.uow(), words[1], users, user, services.now()
                )
            except GateError as error:
                return str(error)
            return f"*{words[1]}* is now held by {' '.join(f'<@{u}>' for u in chosen) or 'nobody'}."
        return "Usage: `/shepherd roles` or `/shepherd roles set ROLE @user @user`"
