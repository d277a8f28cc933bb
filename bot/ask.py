""" "What's needed for the next gate?": the checklist from readiness, guidance from the policies.

The checklist never depends on the LLM: it is computed from the pipeline and the answers. The
policy guidance comes from retrieval and, when an LLM is configured, a grounded answer that cites
its passages. The LLM only writes text; it is never given a tool and cannot change anything.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot import blocks, metrics
from bot.bootstrap import Services
from bot.ids import REF_PATTERN
from gates import usecases
from gates.errors import GateError
from gates.lifecycle import Initiative, Status
from gates.ports import InitiativeFilter
from gates.readiness import Readiness
from knowledge.types import Answer, Hit
from storage.asked_answers import AskedAnswers

logger = logging.getLogger("shepherd.ask")

STREAM_UPDATE_SECONDS = 1.5


@dataclass(frozen=True)
class Context:
    """Which initiative a question is about, if any, and its readiness."""

    initiative: Initiative | None
    readiness: Readiness | None


# A reference as people type it in a question ("what does ai-0001 need?"); stored refs are upper case.
_TYPED_REF = re.compile(REF_PATTERN.pattern, re.IGNORECASE)


def clean_question(text: str, bot_user_id: str | None = None) -> str:
    """The question without Shepherd's own mention (``bot_user_id``) and surrounding space.

    Anyone else mentioned stays ("can <@U0SAM> approve the pilot?" is a question about Sam):
    ``parse.command_text`` makes their mention readable, and the answer escapes it, so it pings
    no one.
    """
    text = text or ""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^<>]*)?>", "", text)
    return text.strip()


def find_initiative(services: Services, text: str, thread_target: str | None) -> Initiative | None:
    """The initiative named by ref in the text, else the one whose thread this is. None when
    the text names refs of which none exists: a typo in an initiative's thread is not about
    the thread's initiative, and ``reply`` says there is no such one."""
    refs = refs_named(services, text)
    thread_ref = None if refs else _ref_of_target(services, thread_target)
    for ref in refs + ([thread_ref] if thread_ref else []):
        try:
            with services.read_uow() as uow:
                return uow.initiatives.get(ref)
        except GateError:
            continue
    return None


# A question about the asker's own initiative that does not name it ("what do we need for the
# next gate?", as the welcome suggests).
_ABOUT_OURS = re.compile(r"\b(?:we|us|our|ours|my initiative|next gate)\b", re.IGNORECASE)


def own_initiatives(services: Services, user: str, text: str) -> list[str]:
    """The refs of the initiatives ``user`` owns or sponsors that are not retired, for a
    question about "our" initiative that names no ref; else none."""
    if refs_named(services, text) or not _ABOUT_OURS.search(text or ""):
        return []
    with services.read_uow() as uow:
        mine = uow.initiatives.list(InitiativeFilter(involving=user))
    return [i.ref for i in mine if i.status is not Status.RETIRED]


def refs_named(services: Services, text: str) -> list[str]:
    """The initiative refs ``text`` names, upper case, once each: only those with this
    install's prefix, so that "ISO-42001" or "COVID-2019" is not taken for one."""
    prefix = f"{services.database.ref_prefix.upper()}-"
    refs = (ref.upper() for ref in _TYPED_REF.findall(text or ""))
    return list(dict.fromkeys(ref for ref in refs if ref.startswith(prefix)))


def _ref_of_target(services: Services, target: str | None) -> str | None:
    """The ref of the initiative a message Shepherd posted is about (``MessageRefs`` targets):
    its card or welcome (``initiative:REF``), or a message about one of its reviews
    (``review:N``, ``review:N:...``), such as the review request an approver replies under."""
    kind, _, rest = (target or "").partition(":")
    if kind == "initiative":
        return rest
    if kind != "review":
        return None
    try:
        with services.read_uow() as uow:
            return uow.reviews.get(int(rest.split(":", 1)[0])).initiative_ref
    except (GateError, ValueError):  # a review since deleted, or none ("review:None")
        return None


def context_for(services: Services, initiative: Initiative | None) -> Context:
    if initiative is None or initiative.status is Status.RETIRED:
        return Context(initiative, None)
    try:
        report = usecases.check_readiness(services.pipeline, services.read_uow(), initiative.ref)
    except GateError:
        report = None
    return Context(initiative, report)


def gates_named(services: Services, question: str) -> list[tuple[str, str]]:
    """The gates of the pipeline that ``question`` names, as (id, title), in pipeline order.

    A gate is named by its title or its id, in any case, as whole words ("the Handover gate",
    "handover to operations", "go live" or "go_live" for ``go_live``).
    """
    named = []
    for gate in services.pipeline.model.gates:
        names = {gate.title, gate.id, gate.id.replace("_", " ")}
        if any(_names_word(question, name) for name in names if name.strip()):
            named.append((gate.id, gate.title))
    return named


def _names_word(text: str, name: str) -> bool:
    words = r"[\s_-]+".join(re.escape(word) for word in name.split())
    return re.search(rf"(?<![\w-]){words}(?![\w-])", text, re.IGNORECASE) is not None


def retrieve(
    services: Services, question: str, gate: tuple[str, str] | None = None, k: int = 5
) -> list[Hit] | None:
    """The best policy passages for ``question``; None when the policy store cannot be searched
    (it did not open, or the search failed: logged).

    Args:
        gate: (id, title) of the gate the question is about, when it concerns an initiative
            (the gate it names, else the initiative's next gate): documents tagged for that gate
            come first, then the rest of the policies fill up to ``k`` (policy folders need not
            be tagged at all).
    """
    if not question:
        return []
    try:
        knowledge = services.knowledge
        if knowledge is None:
            return None
        if gate is None:
            return knowledge.search(question, k=k)
        query = f"{question} ({gate[1]} gate)"
        hits = knowledge.search(query, k=k, gate=gate[0])
        if len(hits) < k:
            # By section, not by passage: ranked among all documents, a tagged section's best
            # passage may be another one than among the tagged documents alone, and the section
            # would be cited twice.
            seen = {(hit.source, hit.section) for hit in hits}
            more = [hit for hit in knowledge.search(query, k=k) if (hit.source, hit.section) not in seen]
            hits += more[: k - len(hits)]
        return hits
    except Exception:  # opening or searching the store must never break the checklist; logged
        logger.exception("policy search failed")
        return None


def reply(
    services: Services,
    question: str,
    initiative: Initiative | None,
    feedback_key: str,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    choices: Sequence[str] = (),
) -> dict[str, Any]:
    """Build the full reply (``text`` + ``blocks``), reporting partial text while it streams.

    Args:
        on_progress: called with a partial message at most every STREAM_UPDATE_SECONDS.
        choices: the asker's initiatives, when the question is about "ours" without a ref.
    """
    ctx = context_for(services, initiative)
    checklist = (
        blocks.readiness_blocks(services.pipeline, ctx.initiative, ctx.readiness)
        if ctx.initiative is not None and ctx.readiness is not None
        else None
    )
    # Found by none of the refs it names: the person must not read a policy answer as one about
    # the initiative they meant, nor the LLM write one.
    unknown = refs_named(services, question) if initiative is None else []
    if unknown:
        checklist = blocks.no_such_initiatives(unknown)
    elif initiative is None and len(choices) > 1:
        # Which of theirs is meant is for them to say: the answer is about the policies only.
        checklist = blocks.which_initiative(choices)
    # Only a ref ("/shepherd ask AI-0003"): the question is what that initiative's next gate
    # needs, not the policies searched for the ref's letters.
    ours = refs_named(services, question)
    rest = _TYPED_REF.sub(lambda ref: "" if ref.group(0).upper() in ours else ref.group(0), question)
    only_refs = bool(ours) and (ctx.readiness is not None or bool(unknown)) and not re.search(r"\w", rest)
    policy_question = ("" if only_refs else question) or (
        f"What is needed for the {ctx.readiness.gate_title} gate?" if ctx.readiness else ""
    )
    gate = (ctx.readiness.gate_id, ctx.readiness.gate_title) if ctx.readiness else None
    if gate is not None:
        named = gates_named(services, policy_question)
        if named:
            # A question about another gate ("who signs off the handover?" while the next gate
            # is the pilot) is about that one; naming several, it is about none in particular.
            gate = named[0] if len(named) == 1 else None
    hits = retrieve(services, policy_question, gate)
    if not policy_question:
        # No question was asked: the help is not a verdict that the policies do not cover one.
        return _kept(services, feedback_key, question, Answer(text=_HELP_TEXT), checklist)
    if hits is None:  # not "no passage matched": the policies could not be searched at all
        unavailable = Answer(text=_LIBRARY_UNAVAILABLE, grounded=False, covered=False)
        return _kept(services, feedback_key, policy_question, unavailable, checklist)
    told = about(ctx, gate)
    if unknown:
        told = f"No initiative {', '.join(unknown[:5])} exists: answer about the policies only.\n"
    stream = services.answerer.stream(told + policy_question, hits)
    text = ""
    last = time.monotonic()
    started = time.perf_counter()
    outcome = "error"
    # Streaming text is the LLM writing its summary (without an LLM the answer comes in one piece).
    grounded = services.settings.llm_configured
    try:
        for piece in stream:
            text += piece
            if on_progress is not None and time.monotonic() - last >= STREAM_UPDATE_SECONDS:
                last = time.monotonic()
                partial = Answer(text=text + " …", hits=tuple(hits), grounded=grounded)
                on_progress(blocks.ask_reply(partial, checklist, feedback_key, finished=False))
        outcome = "ok"
    finally:
        if services.settings.llm_configured:  # without an LLM the "stream" is quoted passages
            metrics.LLM_LATENCY.labels(outcome=outcome).observe(time.perf_counter() - started)
    answer = stream.answer or Answer(text=text, hits=tuple(hits))
    return _kept(services, feedback_key, policy_question, answer, checklist)


def about(ctx: Context, gate: tuple[str, str] | None) -> str:
    """What the LLM is told, before the question, of the initiative and gate it is about: the
    person leaves them out ("what do we need for the next gate?") since Shepherd knows them.
    Empty when the question concerns no initiative."""
    if ctx.initiative is None:
        return ""
    initiative = f"the initiative {ctx.initiative.ref} ({ctx.initiative.name[:200]})"
    if gate is None:
        return f"About {initiative}.\n"
    if ctx.readiness is not None and gate[0] == ctx.readiness.gate_id:
        return f"About {initiative}, whose next gate is the {gate[1]} gate.\n"
    return f"About the {gate[1]} gate of {initiative}.\n"


def _kept(
    services: Services,
    feedback_key: str,
    question: str,
    answer: Answer,
    checklist: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The reply to post, once the answer is kept under its feedback key: a vote on it is then
    recorded with it, even when Slack sends the click without the message (an ephemeral
    answer). Not kept (the database failing), the answer is posted all the same."""
    message = blocks.ask_reply(answer, checklist, feedback_key)
    sources = [hit.citation for hit in answer.hits]
    try:
        AskedAnswers(services.database).keep(feedback_key, question, message["text"], sources, services.now())
    except Exception:  # a database failing must not cost the person the answer; logged with its traceback
        logger.exception("answer %s not kept; a vote on it will be recorded without it", feedback_key)
    return message


_LIBRARY_UNAVAILABLE = (
    "I cannot search the policy library right now, so this answer has no policy guidance; "
    "please ask again in a few minutes."
)
_HELP_TEXT = (
    "Ask me about an initiative (mention its ref, like AI-0007, or ask in its thread) or about our AI "
    "policies, for example: what do we need for the pilot gate?"
)
