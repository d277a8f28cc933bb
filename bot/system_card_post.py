"""Offer the draft system card in the initiative's thread when its production review opens.

Called by the notifier when a review is requested; it does nothing for other gates. The card
is uploaded once per review (remembered in ``MessageRefs``), so an outbox retry of the request
does not post it twice.
"""

from __future__ import annotations

import logging
from urllib.error import HTTPError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.bootstrap import Services
from bot.evidence_pack import system_card
from bot.slack_client import unavailable
from gates import usecases
from gates.lifecycle import Initiative, Review
from gates.system_card import card_people, is_production_gate
from storage.slack_messages import MessageRefs, PostInProgress, Reservation

logger = logging.getLogger("shepherd.system_card")

KIND = "system-card"


def card_target(review_id: int | None) -> str:
    return f"review:{review_id}:system-card"


def offer_system_card(
    services: Services,
    client: WebClient,
    messages: MessageRefs,
    review: Review,
    initiative: Initiative,
    thread: tuple[str, str] | None,
) -> bool:
    """Upload the draft card as a Markdown file into ``thread`` (channel, thread ts).

    Returns True when it uploaded the card now; False for other gates, without a thread, when
    already uploaded, or when Slack refused it for good (logged; the review goes on regardless).

    Raises:
        SlackApiError: Slack failed in a way that passes (a 5xx, a rate limit): try again later.
    """
    pipeline = services.pipeline
    if thread is None or not is_production_gate(pipeline, review.gate_id):
        return False
    target = card_target(review.id)
    if messages.find(target, KIND) is not None:
        return False
    view = usecases.show(pipeline, services.read_uow(), initiative.ref)
    answers = {qid: version.value for qid, version in view.answers.items()}
    people = _names(client, card_people(pipeline, answers))
    card = system_card(pipeline, view, heading_level=1, people=people)
    channel, thread_ts = thread
    # The card's own count, each question once, so the comment and the card's header agree.
    gaps_note = f" {card.gaps} fields are not answered yet." if card.gaps else ""
    # Reserved first, as every post is (``SlackNotifier._post``): two deliveries of the same
    # review request at once (two workers) upload it once.
    at = services.now()
    reservation = messages.reserve(target, KIND, at)
    if reservation is Reservation.POSTED:
        return False
    if reservation is Reservation.BUSY:
        raise PostInProgress(f"the system card of {initiative.ref} is being uploaded by another delivery")
    try:
        response = client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=card.markdown.encode("utf-8"),
            filename=f"{initiative.ref}-system-card.md",
            title=f"System card (draft): {initiative.name}",
            initial_comment=(
                f"A draft system card for {initiative.ref}, written from the answers so far, for the "
                f"production review.{gaps_note} Edit it into your model documentation; it is also in "
                "the evidence pack."
            ),
        )
    except BaseException as error:
        messages.release(target, KIND, at)  # not uploaded: the next delivery may
        # Refused by the Web API, or by the file servers its upload step sends the bytes to.
        if not isinstance(error, SlackApiError | HTTPError) or unavailable(error) is not None:
            raise  # the notification is retried (its messages are posted once), the card with it
        said = error.response.get("error") if isinstance(error, SlackApiError) else f"HTTP {error.code}"
        logger.warning("could not upload the system card of %s: %s", initiative.ref, said)
        return False
    file_id = str((response.get("files") or [{}])[0].get("id", "")) or "uploaded"
    # MessageRefs keeps (channel, ts); a file has no ts of its own, so its id stands in.
    messages.fill(target, KIND, channel, file_id, at)
    return True


def _names(client: WebClient, user_ids: set[str]) -> dict[str, str]:
    """How the card shows each person: a file is not a message, so Slack would show a mention
    in it as the bare id the answer holds. Someone Slack no longer knows keeps their id.

    Raises:
        SlackApiError: Slack failed in a way that passes: the card is offered again later.
    """
    names = {}
    for user_id in sorted(user_ids):
        try:
            user = client.users_info(user=user_id)["user"]
        except SlackApiError as error:
            if unavailable(error) is not None:
                raise
            continue  # user_not_found and the like: shown by id
        profile = user.get("profile") or {}
        real = profile.get("real_name") or user.get("real_name") or ""
        handle = profile.get("display_name") or user.get("name") or ""
        if real and handle:
            names[user_id] = f"{real} (@{handle})"
        elif real or handle:
            names[user_id] = real or f"@{handle}"
    return names
