"""Events: mentions and DMs (questions), App Home opened."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any, TypedDict

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import ask, blocks, parse
from bot.answering import AnswerPool
from bot.bootstrap import Services
from bot.home import publish_home
from bot.listeners.common import ErrorReporter, PersonTold, lazily, workspace_of
from bot.notify import initiative_target
from bot.slack_client import like, retrying_timeouts, unavailable
from storage.slack_messages import MessageRefs

logger = logging.getLogger("shepherd.events")

# Message subtypes that are not a person asking something (edits, joins, bots, our own posts).
# A DM is answered when a person wrote it: no subtype, or one of these. Every other subtype is
# something happening to messages (edited, deleted, replied to, a bot's own), not a question.
_PERSON_SUBTYPES = {None, "file_share", "thread_broadcast", "me_message"}


def _from_a_person(event: dict[str, Any]) -> bool:
    """Whether a person wrote the message, not a bot nor a workflow. Shepherd answers only people:
    another bot that replies in its threads and mentions Shepherd there would otherwise talk with
    it without end (Bolt already drops Shepherd's own messages)."""
    return event.get("subtype") in _PERSON_SUBTYPES and not event.get("bot_id")


# How long a streaming update may take: a healthy chat.update takes well under a second, and one
# slower than this had better be skipped than hold the rest of the answer back.
INTERIM_TIMEOUT_SECONDS = 3


class EventListeners:
    def __init__(self, services: Services, messages: MessageRefs, answers: AnswerPool) -> None:
        self._services = services
        self._messages = messages
        self._answers = answers

    def register(self, app: App) -> None:
        app.event("app_mention")(ack=self.ack, lazy=lazily(self._services, self.mention))
        app.event({"type": "message", "channel_type": "im"})(
            ack=self.ack, lazy=lazily(self._services, self.direct_message)
        )
        app.event("message")(self.ignore)
        app.event("app_home_opened")(ack=self.ack, lazy=lazily(self._services, self.home_opened))

    def ack(self, ack: Ack) -> None:
        ack()

    def ignore(self, ack: Ack) -> None:
        ack()

    def mention(
        self, body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        if not _from_a_person(event):
            logger.info("a mention by a bot or a workflow is not answered")
            return
        channel = event["channel"]
        # Slack sends app_mention again, marked "edited", when the person edits the message
        # (fixing a typo): a message is answered once. One edited to add the mention was not
        # answered yet, and is.
        services = self._services
        if not services.database.claim(f"asked:{channel}:{event['ts']}", services.now()):
            logger.info("an edited question already answered is not answered again")
            return
        thread_ts = event.get("thread_ts") or event["ts"]
        target = self._messages.target_at(channel, event["thread_ts"]) if event.get("thread_ts") else None
        question = ask.clean_question(event.get("text", ""), context.bot_user_id)
        self._answer(client, body, question, channel, thread_ts, target)

    def direct_message(
        self, body: dict[str, Any], event: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        if not _from_a_person(event):
            return
        channel = event["channel"]
        thread_ts = event.get("thread_ts")
        # A reply under a message Shepherd sent about an initiative (a review request, say) is
        # about that initiative, as in the registry channel.
        target = self._messages.target_at(channel, thread_ts) if thread_ts else None
        question = ask.clean_question(event.get("text", ""), context.bot_user_id)
        # The welcome suggests "what do we need for the next gate?" at the top of the DM: asked
        # without a ref, it is about the asker's own initiative.
        mine = ask.own_initiatives(self._services, event["user"], question) if target is None else []
        self._answer(client, body, question, channel, thread_ts, target, mine)

    def home_opened(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        user = event["user"]
        if event.get("tab", "home") == "home":
            publish_home(self._services, client, user)  # remembers them, and their page
            return
        # The messages (agent) tab: greet once per person, so the DM never starts empty. Claimed
        # and queued in one transaction: Slack failing delays the greeting, it does not lose it.
        services = self._services
        with services.uow() as uow:
            if uow.dedupe.first_time(f"greeted:{user}", services.now()):
                greeting = {"user": user, "channel": event.get("channel"), **workspace_of(body)}
                uow.outbox.put("greeting", greeting, services.now())
                uow.commit()

    def _answer(
        self,
        client: WebClient,
        body: dict[str, Any],
        text: str,
        channel: str,
        thread_ts: str | None,
        target: str | None,
        mine: Sequence[str] = (),
    ) -> None:
        """Something visible at once, then the checklist and the guidance in its place.

        Runs on Bolt's lazy-listener thread only as far as the placeholder: the answer itself is
        made on an answering thread (``bot.answering``), and if none is free nor can be waited
        for, the placeholder says Shepherd is busy.
        """
        posted = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **blocks.ask_placeholder())
        placeholder = _Placeholder(client, {"channel": posted["channel"], "ts": posted["ts"]})
        status_thread = thread_ts or posted["ts"]
        if channel.startswith("D"):
            self._set_status(client, channel, status_thread, "is checking the pipeline and the policies…")
        reporter = ErrorReporter(self._services)

        def answer() -> None:
            try:
                # A question at the top of a DM is answered there: replies under the answer are
                # the thread that follows it.
                self._reply(placeholder, text, target, (posted["channel"], status_thread), mine)
            except Exception as error:  # logged; the person told, unless the placeholder says so
                reporter.handle(error, body)  # the asker, told in their workspace
            finally:
                # Answered or not, Shepherd is no longer checking anything.
                if channel.startswith("D"):
                    self._set_status(client, channel, status_thread, "")

        def abandon() -> None:  # the process is stopping before the answer was made
            placeholder.settle(blocks.ask_restarted())
            if channel.startswith("D"):
                self._set_status(client, channel, status_thread, "")

        if self._answers.submit(answer, abandon):
            return
        logger.warning(
            "answering %d questions, with %d waiting: one more is turned away",
            self._answers.workers,
            self._answers.waiting,
        )
        try:
            placeholder.settle(blocks.ask_busy())
        finally:
            if channel.startswith("D"):
                self._set_status(client, channel, status_thread, "")

    def _reply(
        self,
        placeholder: _Placeholder,
        text: str,
        target: str | None,
        thread: tuple[str, str],
        mine: Sequence[str] = (),
    ) -> None:
        """Make the answer and put it in place of the placeholder, in ``thread`` (channel, ts).

        Raises:
            PersonTold: it could not be made, or Slack refused it; the placeholder says so.
        """
        services = self._services
        try:
            # Slack escapes message text as it does a slash command's (``R&amp;D``): the policy
            # search and the LLM get what the person typed.
            question = parse.command_text(text)
            # The asker's only initiative, for a question about "ours" (``ask.own_initiatives``).
            assumed = initiative_target(mine[0]) if len(mine) == 1 else None
            initiative = ask.find_initiative(services, question, target or assumed)
            if initiative is not None and target is None:
                self._remember_thread(thread, initiative.ref)
            key = f"ask:{uuid.uuid4().hex[:12]}"
            message = ask.reply(
                services, question, initiative, key, on_progress=placeholder.stream, choices=mine
            )
        except Exception as error:
            self._apologise(placeholder, error)
            raise PersonTold("the answer could not be made; the placeholder says so") from error
        try:
            placeholder.settle(message)
        except SlackApiError as error:
            if unavailable(error) is not None:
                raise  # Slack down, not the answer refused: the apology would fare no better
            self._apologise(placeholder, error)
            raise PersonTold("Slack refused the answer; the placeholder says so") from error

    def _remember_thread(self, thread: tuple[str, str], ref: str) -> None:
        """The thread of a question about ``ref`` ("what does AI-0003 need?") is about it from
        then on, as an initiative's own thread is: a follow-up there ("and who approves it?")
        need not name it again. The first initiative asked about in a thread keeps it."""
        channel, ts = thread
        try:
            self._messages.remember(
                initiative_target(ref), f"asked:{channel}:{ts}", channel, ts, self._services.now()
            )
        except Exception:  # a follow-up would only need the ref typed again; logged
            logger.exception("the thread of a question about %s was not remembered", ref)

    @staticmethod
    def _apologise(placeholder: _Placeholder, error: Exception) -> None:
        """The placeholder must not promise an answer that will never come. If it cannot say so
        either, ``error`` is what the person is told about (``ErrorReporter``), not this."""
        try:
            placeholder.settle(blocks.ask_failed())
        except Exception as failure:
            logger.warning("the placeholder could not say the answer failed either: %r", failure)
            raise error from None

    @staticmethod
    def _set_status(client: WebClient, channel: str, thread_ts: str, status: str) -> None:
        """Slack's assistant status line: best effort (it also clears itself after two minutes)."""
        try:
            client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts, status=status)
        except SlackApiError as error:
            logger.debug("assistant status not set: %s", error)


class _Where(TypedDict):
    """Which message a placeholder is: ``chat_update``'s channel and ts."""

    channel: str
    ts: str


class _Placeholder:
    """The message that stands for an answer while it is made: updated as the answer streams,
    then settled once, by the answer, the apology, or the notice that Shepherd stopped. Once
    settled, nothing else replaces it: an answer still streaming when the process stops must not
    overwrite the notice with a partial answer."""

    def __init__(self, client: WebClient, where: _Where) -> None:
        self._client = client
        # Slack slow for a moment must not cost a finished answer: the same update is safe to send
        # again, so a timeout or a dropped connection is retried.
        self._final = retrying_timeouts(client)
        # An interim update is best effort: it must not hold the answer back by waiting out a
        # 429's Retry-After (twice, with make_client's handlers) or a slow Slack's full timeout.
        self._interim = like(client, [], timeout=min(client.timeout, INTERIM_TIMEOUT_SECONDS))
        self._where = where
        self._lock = threading.Lock()
        self._settled = False
        self._streaming = True

    def stream(self, message: dict[str, Any]) -> None:
        """Show the answer growing, best effort.

        An interim update only shows the answer growing; only the final update decides. So one
        that fails for any reason (Slack's error, a read timeout, a dropped connection) is
        skipped, and so are the rest: Slack slow once is likely slow again, and the answer
        should not wait for it, nor be lost to it.
        """
        with self._lock:
            if self._settled or not self._streaming:
                return
            try:
                self._interim.chat_update(**self._where, **message)
            except Exception as error:
                self._streaming = False
                logger.warning("interim update failed, the final answer follows without more: %r", error)

    def settle(self, message: dict[str, Any]) -> bool:
        """Put ``message`` in place for good, unless something already was; returns whether it
        was put. Raises what the update raises (the placeholder is then not settled)."""
        with self._lock:
            if self._settled:
                return False
            self._final.chat_update(**self._where, **message)
            self._settled = True
            if not self._streaming:
                self._again_later(message)
            return True

    def _again_later(self, message: dict[str, Any]) -> None:
        """An interim update that timed out may still be applied by Slack, after this one, and
        leave a cut-off answer for good: once the client's timeout has passed, the final update
        is sent again so that it is the last one Slack applies. On a timer, not holding an
        answering thread."""

        def again() -> None:
            try:
                self._final.chat_update(**self._where, **message)
            except Exception as error:  # the first one was applied: this is only a precaution
                logger.warning("the final update, sent again after a failed interim one, failed: %r", error)

        timer = threading.Timer(self._client.timeout, again)
        timer.daemon = True
        timer.start()
