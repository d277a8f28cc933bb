"""`/shepherd ...`: new, ask, status, withdraw, hold, resume, retire, portfolio, help, roles."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import ask, blocks, ids, parse
from bot.answering import AnswerPool
from bot.blocks.labels import STATUS_WORDS, gate_title, stage_label
from bot.blocks.portfolio import portfolio_message
from bot.blocks.text import MAX_MESSAGE_TEXT, bullet_list, clip, escape, mention, mention_list, truncate
from bot.bootstrap import Services
from bot.listeners.common import ErrorReporter, lazily
from gates import usecases
from gates.errors import GateError, ShepherdError, UnknownRole
from gates.portfolio import load_portfolio
from gates.ports import InitiativeFilter
from storage.errors import StorageError

logger = logging.getLogger("shepherd.commands")

USAGE = "Try `/shepherd help`."
STATUS_USAGE = (
    f"Usage: `{ids.COMMAND} status` for your initiatives, or `{ids.COMMAND} status AI-0001` for one."
)
ROLES_USAGE = (
    f"Usage: `{ids.COMMAND} roles` shows who holds each role; `{ids.COMMAND} roles set ROLE @person @person` "
    f"names its holders; `{ids.COMMAND} roles clear ROLE` removes them."
)
ROLE_ADMINS_ONLY = "Only role admins can manage roles (SHEPHERD_ROLE_ADMINS)."
DATABASE_DOWN = (
    "Shepherd can't reach its database right now, so nothing was changed. Please try again in a minute."
)
UNAVAILABLE = "Shepherd can't do this right now, so nothing was changed. Please try again in a minute."

# `/shepherd status` without a REF lists this many of the person's initiatives, newest first,
# then "and N more" pointing to the Home tab.
STATUS_LIST_SHOWN = 20


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


def refusal(error: ShepherdError, name: str) -> str:
    """What to tell the person when ``/shepherd NAME`` meets an error Shepherd raises on purpose.

    A refusal of the domain explains itself (escaped: it may quote what was typed); a database
    that is down or busy is said so plainly (its message names the database, for the log),
    rather than failing the request, which Slack shows as its own "/shepherd failed".
    """
    if isinstance(error, GateError):
        return escape(str(error))
    logger.warning("/shepherd %s could not be answered: %s", name, error)
    return DATABASE_DOWN if isinstance(error, StorageError) else UNAVAILABLE


def needs_lazy_half(body: dict[str, Any]) -> bool:
    """A slash command's body is the command itself; matched by its body alone
    (``bot.listener_matching``)."""
    return subcommand(body.get("text", ""))[0] in LAZY_SUBCOMMANDS


class CommandListeners:
    def __init__(self, services: Services, answers: AnswerPool) -> None:
        self._services = services
        self._answers = answers

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
        ack(**self._answer(name, command.get("user_id", ""), rest))

    def _answer(self, name: str, user: str, rest: str) -> dict[str, Any]:
        """The reply the ack carries. ``rest`` is the text after the subcommand, as Slack sends
        it (escaped: see ``parse.command_text``)."""
        if name == "help":
            return blocks.help_message()
        if name == "portfolio":
            # Computing the figures reads every initiative: it happens after the ack.
            return {
                "text": PORTFOLIO_WAIT if self._services.settings.sees_portfolio(user) else PORTFOLIO_REFUSED
            }
        if name == "new":
            return {}
        if name == "ask":
            if not rest.strip():
                return {
                    "text": "Ask a question after `ask`, for example: "
                    "`/shepherd ask what do we need for the pilot gate?`"
                }
            return {"text": "Looking into it: the answer will appear here in a moment."}
        try:
            if name == "status":
                return self._status(user, rest)
            if name == "roles":
                return {"text": self._roles(user, rest)}
            if name in STATUS_CHANGES:
                return {"text": self._change_status(name, user, rest)}
            if parse.initiative_ref(name) is not None and not rest.strip():
                # `/shepherd AI-0001` is how people look one up: its status.
                return self._status(user, name)
        except ShepherdError as error:
            return {"text": refusal(error, name)}
        return {"text": f"I don't know `{clip(parse.command_text(name), 40)}`. {USAGE}"}

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
            # Answered on an answering thread (``bot.answering``), not on Bolt's.
            reporter = ErrorReporter(self._services)

            def answer() -> None:
                try:
                    self._ask(parse.command_text(rest), respond)
                except Exception as error:
                    reporter.handle(error, body)

            def abandon() -> None:  # the process is stopping before the answer was made
                respond(response_type="ephemeral", **blocks.ask_restarted())

            if not self._answers.submit(answer, abandon):
                logger.warning("too many questions at once: /shepherd ask is turned away")
                respond(response_type="ephemeral", **blocks.ask_busy())

    def _ask(self, question: str, respond: Respond) -> None:
        try:
            initiative = ask.find_initiative(self._services, question, None)
            key = f"ask:{uuid.uuid4().hex[:12]}"
            message = ask.reply(self._services, ask.clean_question(question), initiative, key)
        except StorageError as error:
            message = {"text": refusal(error, "ask")}
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

    def _status(self, user: str, rest: str) -> dict[str, Any]:
        words = rest.split()
        if not words:
            return {"text": self._my_initiatives(user)}
        if len(words) > 1:
            return {"text": STATUS_USAGE}
        ref = parse.initiative_ref(words[0])
        if ref is None:
            return {"text": f"{parse.not_a_ref(words[0])} {STATUS_USAGE}"}
        services = self._services
        # One read transaction for the whole reply: it is answered inside the ack.
        view = usecases.status(services.pipeline, services.read_uow(), ref)
        stalled = usecases.is_stalled(services.pipeline, view.initiative, services.now())
        return blocks.status_message(
            services.pipeline, view.initiative, view.readiness, view.open_review, stalled=stalled
        )

    def _my_initiatives(self, user: str) -> str:
        services, pipeline = self._services, self._services.pipeline
        now = services.now()
        # Counted, and only the newest read (initiatives are listed oldest first): the ones a
        # person is most likely working on, whatever their number.
        # Those they sponsor too: a sponsor often registers one on its owner's behalf.
        with services.read_uow() as uow:
            owned = uow.initiatives.count(InitiativeFilter(involving=user))
            newest = max(0, owned - STATUS_LIST_SHOWN)
            mine = uow.initiatives.list(
                InitiativeFilter(involving=user, limit=STATUS_LIST_SHOWN, offset=newest)
            )
        if not mine:
            return "You own or sponsor no initiatives yet. Register one with `/shepherd new`."
        lines = [
            f"*{i.ref}* {clip(i.name, 80)}: {escape(stage_label(i.stage))}, {STATUS_WORDS[i.status]}"
            + (f" (you sponsor it for {mention(i.owner_id)})" if i.owner_id != user else "")
            + (" :warning: stalled" if usecases.is_stalled(pipeline, i, now) else "")
            for i in reversed(mine)
        ]
        head = "Your initiatives, newest first:"
        everything = "Your Home tab in Shepherd lists all you own or sponsor. "
        details = f"Details: `{ids.COMMAND} status AI-0001`"
        room = MAX_MESSAGE_TEXT - len(head) - len(everything) - len(details) - 2
        listed = bullet_list(lines, room, max_items=STATUS_LIST_SHOWN, total=owned)
        cut = listed.rsplit("\n", 1)[-1].startswith("• and ")
        return f"{head}\n{listed}\n{everything if cut else ''}{details}"

    def _change_status(self, name: str, user: str, rest: str) -> str:
        services = self._services
        usage, needs_reason = STATUS_CHANGES[name]
        words = rest.split(maxsplit=1)
        typed, reason = (words[0] if words else ""), (words[1].strip() if len(words) > 1 else "")
        if not typed or (needs_reason and not reason):
            return f"Usage: `{ids.COMMAND} {usage}`" + (
                " (the reason is shown on the card)" if needs_reason else ""
            )
        ref = parse.initiative_ref(typed)
        if ref is None:
            return f"{parse.not_a_ref(typed)} Usage: `{ids.COMMAND} {usage}`"
        reason = parse.command_text(reason)
        now, steward = services.now(), services.settings.is_steward(user)
        if name == "withdraw":
            review = usecases.withdraw(services.uow(), ref, user, now)
            title = gate_title(services.pipeline, review.gate_id)
            return (
                f"You withdrew the review of the *{clip(title, 150)}* gate of {ref}. Its answers can "
                "change again; submit it for review from the card when it is ready."
            )
        if name == "hold":
            usecases.hold(services.uow(), ref, user, reason, now, steward=steward)
            return (
                f"{ref} is on hold: {clip(reason, 1000)}\n`{ids.COMMAND} resume {ref}` makes it active again."
            )
        if name == "resume":
            usecases.resume(services.uow(), ref, user, now, steward=steward)
            return f"{ref} is active again."
        usecases.retire(services.uow(), ref, user, reason, now, steward=steward)
        return f"{ref} is retired: {clip(reason, 1000)}"

    def _portfolio_figures(self, respond: Respond) -> Any:
        services = self._services
        try:
            return load_portfolio(services.pipeline, services.read_uow(), services.now())
        except ShepherdError as error:
            respond(response_type="ephemeral", text=refusal(error, "portfolio"))
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
        admin = user in services.settings.role_admins
        words = rest.split(maxsplit=2)
        action = words[0].lower() if words else "list"
        if action == "list" and len(words) <= 1:
            # Anyone may see who holds the roles (`/shepherd help` says so; a card's readiness
            # names them too); only role admins change them.
            with services.read_uow() as uow:
                holders = usecases.role_holders(services.pipeline, uow)
            lines = [
                f"• *{escape(role)}*: {mention_list(users, 1000) or 'nobody yet'}"
                for role, users in holders.items()
            ]
            usage = ROLES_USAGE if admin else ROLE_ADMINS_ONLY
            listed = truncate("Role holders:\n" + "\n".join(lines), MAX_MESSAGE_TEXT - len(usage) - 1)
            return listed + "\n" + usage
        if not admin:
            return ROLE_ADMINS_ONLY
        if action not in ("set", "clear") or len(words) < 2 or (action == "clear" and len(words) > 2):
            return ROLES_USAGE
        role = self._role(words[1])
        if action == "set":
            try:
                users = parse.user_ids(words[2] if len(words) > 2 else "")
            except parse.PayloadError as error:
                return str(error)
            if not users:
                # An empty `set` used to clear the role without a word: clearing is asked for.
                return (
                    f"Say who should hold *{role}*, for example `{ids.COMMAND} roles set {role} @sam`; "
                    f"to remove its holders, `{ids.COMMAND} roles clear {role}`."
                )
        else:
            users = []
        chosen = usecases.set_role_holders(
            services.pipeline, services.uow(), role, users, user, services.now()
        )
        spec = services.pipeline.model.roles[role]
        also = (
            " The pipeline file names holders of its own, who keep the role."
            if spec.slack_users or spec.slack_usergroup
            else ""
        )
        if not chosen:
            return f"*{role}* has no holders set with `{ids.COMMAND} roles` any more.{also}"
        return f"*{role}* is now held by {' '.join(f'<@{u}>' for u in chosen)}.{also}"

    def _role(self, typed: str) -> str:
        """The pipeline's role a person typed, in any case.

        Raises:
            UnknownRole: the pipeline defines none by that name.
        """
        roles = self._services.pipeline.model.roles
        for role in roles:
            if role.lower() == typed.lower():
                return role
        raise UnknownRole(truncate(parse.command_text(typed), 40), list(roles))  # escaped by refusal()
