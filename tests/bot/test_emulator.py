"""The fake Slack Web API, driven by the real slack_sdk WebClient over HTTP."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from bot.emulator.state import Channel
from bot.emulator.webapi import FakeSlackWebAPI
from tests.bot.conftest import OUTSIDER, OWNER, RISK_OFFICER


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    """A mrkdwn section block."""
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def modal(title: str = "Register", blocks: int = 1) -> dict[str, Any]:
    """A minimal modal with ``blocks`` section blocks."""
    return {
        "type": "modal",
        "callback_id": "intake",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section(f"line {i}") for i in range(blocks)],
    }


def error_of(call: Any) -> str:
    """Run a WebClient call expected to fail; return Slack's error code."""
    with pytest.raises(SlackApiError) as raised:
        call()
    return str(raised.value.response["error"])


# messages -------------------------------------------------------------------------------------


def test_posted_message_is_stored_and_listed_in_history(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    posted = web_client.chat_postMessage(
        channel=registry.id, text="New initiative", blocks=[section("*Fraud triage*")]
    )

    history = web_client.conversations_history(channel=registry.id)
    assert [m["ts"] for m in history["messages"]] == [posted["ts"]]
    stored = history["messages"][0]
    assert stored["text"] == "New initiative"
    assert stored["bot_id"] == slack_api.state.bot_id
    assert stored["blocks"][0]["block_id"], "Slack assigns a block_id when none is given"


def test_message_timestamps_are_unique_and_increasing(web_client: WebClient, registry: Channel) -> None:
    stamps = [web_client.chat_postMessage(channel=registry.id, text=str(i))["ts"] for i in range(20)]

    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 20
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_channel_can_be_named_with_a_hash(web_client: WebClient, registry: Channel) -> None:
    posted = web_client.chat_postMessage(channel="#shepherd-registry", text="hello")

    assert posted["channel"] == registry.id


def test_update_replaces_text_and_blocks(web_client: WebClient, registry: Channel) -> None:
    posted = web_client.chat_postMessage(channel=registry.id, text="Review open", blocks=[section("open")])

    web_client.chat_update(channel=registry.id, ts=posted["ts"], text="Approved", blocks=[section("done")])

    stored = web_client.conversations_history(channel=registry.id)["messages"][0]
    assert stored["text"] == "Approved"
    assert stored["blocks"][0]["text"]["text"] == "done"
    assert "edited" in stored


def test_update_of_unknown_message_is_message_not_found(web_client: WebClient, registry: Channel) -> None:
    error = error_of(lambda: web_client.chat_update(channel=registry.id, ts="1.000001", text="x"))

    assert error == "message_not_found"


def test_bot_cannot_update_or_delete_what_a_person_wrote(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    typed = slack_api.state.post_user_message(registry.id, OWNER, "hello bot")

    update = error_of(lambda: web_client.chat_update(channel=registry.id, ts=typed["ts"], text="x"))
    delete = error_of(lambda: web_client.chat_delete(channel=registry.id, ts=typed["ts"]))

    assert (update, delete) == ("cant_update_message", "cant_delete_message")


def test_deleted_message_is_gone(web_client: WebClient, registry: Channel) -> None:
    posted = web_client.chat_postMessage(channel=registry.id, text="oops")

    web_client.chat_delete(channel=registry.id, ts=posted["ts"])

    assert web_client.conversations_history(channel=registry.id)["messages"] == []


def test_thread_replies_come_back_in_order_under_their_parent(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    card = web_client.chat_postMessage(channel=registry.id, text="card")
    slack_api.state.post_user_message(registry.id, OWNER, "what next?", thread_ts=card["ts"])
    reply = web_client.chat_postMessage(channel=registry.id, text="answer", thread_ts=card["ts"])

    thread = web_client.conversations_replies(channel=registry.id, ts=card["ts"])["messages"]

    assert [m["text"] for m in thread] == ["card", "what next?", "answer"]
    assert thread[0]["reply_count"] == 2
    assert thread[-1]["ts"] == reply["ts"]
    top_level = web_client.conversations_history(channel=registry.id)["messages"]
    assert [m["text"] for m in top_level] == ["card"]


def test_message_without_text_or_blocks_is_no_text(web_client: WebClient, registry: Channel) -> None:
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        error = error_of(lambda: web_client.chat_postMessage(channel=registry.id))

    assert error == "no_text"


def test_more_than_50_blocks_in_a_message_is_invalid_blocks(web_client: WebClient, registry: Channel) -> None:
    blocks = [section(f"row {i}") for i in range(51)]

    with pytest.raises(SlackApiError) as raised:
        web_client.chat_postMessage(channel=registry.id, text="long", blocks=blocks)

    assert raised.value.response["error"] == "invalid_blocks"
    assert "no more than 50 items" in raised.value.response["response_metadata"]["messages"][0]
    assert web_client.conversations_history(channel=registry.id)["messages"] == []


def test_blocks_breaking_block_kit_limits_are_invalid_blocks(
    web_client: WebClient, registry: Channel
) -> None:
    too_long = [section("x" * 3001)]
    duplicated = [section("a", "same"), section("b", "same")]
    unknown = [{"type": "no_such_block"}]

    errors = [
        error_of(lambda b=b: web_client.chat_postMessage(channel=registry.id, text="t", blocks=b))
        for b in (too_long, duplicated, unknown)
    ]

    assert errors == ["invalid_blocks"] * 3


def test_unknown_channel_and_channel_without_the_bot_are_refused(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    private = slack_api.state.add_channel("secret", bot_is_member=False)

    assert error_of(lambda: web_client.chat_postMessage(channel="C0NOPE", text="x")) == ("channel_not_found")
    assert error_of(lambda: web_client.chat_postMessage(channel=private.id, text="x")) == ("not_in_channel")


def test_wrong_or_missing_token_is_refused(slack_api: FakeSlackWebAPI) -> None:
    wrong = slack_api.web_client(token="xoxb-wrong", retry_handlers=[])

    assert error_of(wrong.auth_test) == "invalid_auth"
    assert error_of(WebClient(base_url=slack_api.api_url, retry_handlers=[]).auth_test) == "not_authed"


def test_auth_test_names_the_bot(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    answer = web_client.auth_test()

    assert answer["user_id"] == slack_api.state.bot_user_id
    assert answer["team_id"] == slack_api.state.team_id
    assert answer["bot_id"] == slack_api.state.bot_id


def test_form_encoded_calls_with_a_token_parameter_work(
    slack_api: FakeSlackWebAPI, registry: Channel
) -> None:
    body = (
        f"token={slack_api.bot_token}&channel={registry.id}&text=from+a+form"
        f"&blocks={json.dumps([section('form block')])}"
    ).encode()
    request = urllib.request.Request(
        slack_api.api_url + "chat.postMessage",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())

    assert answer["ok"], answer
    assert answer["message"]["blocks"][0]["text"]["text"] == "form block"
    assert slack_api.last("chat.postMessage").token == slack_api.bot_token


# ephemeral, DMs, people, permalinks, reactions ---------------------------------------------------


def test_ephemeral_message_is_shown_only_to_its_user(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    answer = web_client.chat_postEphemeral(channel=registry.id, user=OWNER, text="only you")

    shown = slack_api.state.ephemeral_for(OWNER, registry.id)
    assert [(m["text"], m["ts"]) for m in shown] == [("only you", answer["message_ts"])]
    assert slack_api.state.ephemeral_for(RISK_OFFICER) == []
    assert web_client.conversations_history(channel=registry.id)["messages"] == []


def test_ephemeral_to_someone_outside_the_channel_is_refused(
    web_client: WebClient, registry: Channel
) -> None:
    error = error_of(lambda: web_client.chat_postEphemeral(channel=registry.id, user=OUTSIDER, text="x"))

    assert error == "user_not_in_channel"


def test_conversations_open_returns_the_same_dm_each_time(web_client: WebClient) -> None:
    first = web_client.conversations_open(users=OWNER)
    second = web_client.conversations_open(users=OWNER)

    assert first["channel"]["id"].startswith("D")
    assert second["channel"]["id"] == first["channel"]["id"]
    assert second["already_open"] is True
    info = web_client.conversations_info(channel=first["channel"]["id"])["channel"]
    assert info["is_im"] is True
    assert info["user"] == OWNER


def test_posting_to_a_user_id_lands_in_their_dm(web_client: WebClient) -> None:
    posted = web_client.chat_postMessage(channel=OWNER, text="what happens next")

    dm = web_client.conversations_open(users=OWNER)["channel"]["id"]
    assert posted["channel"] == dm


def test_people_and_groups_are_listed(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    slack_api.state.add_usergroup("S0RISK", "risk-officers", [RISK_OFFICER])

    assert web_client.users_info(user=OWNER)["user"]["profile"]["email"] == "olivia@example.com"
    assert error_of(lambda: web_client.users_info(user="U0NOBODY")) == "user_not_found"
    assert web_client.usergroups_users_list(usergroup="S0RISK")["users"] == [RISK_OFFICER]
    pages = [page["members"] for page in web_client.users_list(limit=2)]
    assert [len(p) for p in pages] == [2, 2]
    assert {m["id"] for p in pages for m in p} == {OWNER, RISK_OFFICER, OUTSIDER, "U0SHEPBOT"}


def test_permalink_points_at_the_message(web_client: WebClient, registry: Channel) -> None:
    posted = web_client.chat_postMessage(channel=registry.id, text="card")

    link = web_client.chat_getPermalink(channel=registry.id, message_ts=posted["ts"])["permalink"]

    assert link.endswith(f"/archives/{registry.id}/p{posted['ts'].replace('.', '')}")


def test_the_same_reaction_twice_is_already_reacted(web_client: WebClient, registry: Channel) -> None:
    posted = web_client.chat_postMessage(channel=registry.id, text="card")

    web_client.reactions_add(channel=registry.id, timestamp=posted["ts"], name="eyes")
    again = error_of(
        lambda: web_client.reactions_add(channel=registry.id, timestamp=posted["ts"], name="eyes")
    )

    assert again == "already_reacted"
    stored = web_client.conversations_history(channel=registry.id)["messages"][0]
    assert stored["reactions"] == [{"name": "eyes", "users": ["U0SHEPBOT"], "count": 1}]


# views ----------------------------------------------------------------------------------------


def test_views_open_needs_a_fresh_single_use_trigger_id(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    trigger = slack_api.mint_trigger_id(OWNER)

    opened = web_client.views_open(trigger_id=trigger, view=modal())

    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["hash"]
    assert [v["id"] for v in slack_api.state.modal_stack(OWNER)] == [opened["view"]["id"]]
    assert error_of(lambda: web_client.views_open(trigger_id=trigger, view=modal())) == ("expired_trigger_id")
    assert error_of(lambda: web_client.views_open(trigger_id="1.2.unknown", view=modal())) == (
        "invalid_trigger_id"
    )


def test_trigger_id_expires_after_three_seconds(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    now = [1_800_000_000.0]
    slack_api.state.clock = lambda: now[0]
    trigger = slack_api.mint_trigger_id(OWNER)
    now[0] += 3.5

    assert error_of(lambda: web_client.views_open(trigger_id=trigger, view=modal())) == ("expired_trigger_id")


def test_view_update_with_a_stale_hash_is_hash_conflict(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    opened = web_client.views_open(trigger_id=slack_api.mint_trigger_id(OWNER), view=modal())["view"]
    updated = web_client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Page 2"))["view"]

    conflict = error_of(
        lambda: web_client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Old"))
    )

    assert conflict == "hash_conflict"
    assert updated["hash"] != opened["hash"]
    assert slack_api.state.view(opened["id"])["title"]["text"] == "Page 2"
    assert error_of(lambda: web_client.views_update(view_id="V0NOPE", view=modal())) == "not_found"


def test_views_push_stacks_at_most_three_modals(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    root = web_client.views_open(trigger_id=slack_api.mint_trigger_id(OWNER), view=modal())["view"]
    pushed = [
        web_client.views_push(trigger_id=slack_api.mint_trigger_id(OWNER), view=modal(f"Step {i}"))
        for i in (2, 3)
    ]

    over = error_of(lambda: web_client.views_push(trigger_id=slack_api.mint_trigger_id(OWNER), view=modal()))

    assert over == "push_limit_reached"
    assert pushed[0]["view"]["root_view_id"] == root["id"]
    assert pushed[1]["view"]["previous_view_id"] == pushed[0]["view"]["id"]
    assert len(slack_api.state.modal_stack(OWNER)) == 3


def test_a_modal_over_100_blocks_or_with_a_long_title_is_refused(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    too_many = error_of(
        lambda: web_client.views_open(trigger_id=slack_api.mint_trigger_id(OWNER), view=modal(blocks=101))
    )
    long_title = error_of(
        lambda: web_client.views_open(
            trigger_id=slack_api.mint_trigger_id(OWNER), view=modal("A title that is far too long")
        )
    )

    assert (too_many, long_title) == ("invalid_blocks", "invalid_arguments")
    assert slack_api.state.modal_stack(OWNER) == []


def test_app_home_is_published_per_user(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    home = {"type": "home", "blocks": [section("My initiatives")]}

    first = web_client.views_publish(user_id=OWNER, view=home)["view"]
    second = web_client.views_publish(user_id=OWNER, view={**home, "blocks": [section("v2")]})["view"]

    assert second["id"] == first["id"]
    stored = slack_api.state.home_view(OWNER)
    assert stored is not None
    assert stored["blocks"][0]["text"]["text"] == "v2"
    assert slack_api.state.home_view(RISK_OFFICER) is None
    stale = error_of(lambda: web_client.views_publish(user_id=OWNER, view=home, hash=first["hash"]))
    assert stale == "hash_conflict"


# failures and retries -----------------------------------------------------------------------------


def test_rate_limit_is_retried_after_retry_after_and_posts_once(
    slack_api: FakeSlackWebAPI, registry: Channel
) -> None:
    client = slack_api.web_client(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    slack_api.faults.rate_limit("chat.postMessage", retry_after=0)

    posted = client.chat_postMessage(channel=registry.id, text="card")

    attempts = slack_api.calls("chat.postMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].response == {"ok": False, "error": "ratelimited"}
    assert [m["ts"] for m in slack_api.state.channel_messages(registry.id)] == [posted["ts"]]


def test_rate_limit_answer_carries_retry_after(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    slack_api.faults.rate_limit(retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        web_client.auth_test()

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"


def test_server_errors_are_retried_until_slack_recovers(
    slack_api: FakeSlackWebAPI, registry: Channel
) -> None:
    handler = ServerErrorRetryHandler(
        max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    client = slack_api.web_client(retry_handlers=[handler])
    slack_api.faults.server_error("chat.postMessage", times=2)

    client.chat_postMessage(channel=registry.id, text="decision recorded")

    assert [c.status for c in slack_api.calls("chat.postMessage")] == [500, 500, 200]
    assert len(slack_api.state.channel_messages(registry.id)) == 1


def test_a_failed_call_changes_nothing(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    slack_api.faults.server_error()

    with pytest.raises(SlackApiError) as raised:
        web_client.chat_postMessage(channel=registry.id, text="lost?")

    assert raised.value.response.status_code == 500
    assert slack_api.state.channel_messages(registry.id) == []


def test_injected_errors_fail_the_next_n_calls_then_recover(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    slack_api.faults.fail("chat.postMessage", "channel_is_archived", times=2)

    errors = [error_of(lambda: web_client.chat_postMessage(channel=registry.id, text="x")) for _ in range(2)]
    web_client.chat_postMessage(channel=registry.id, text="x")

    assert errors == ["channel_is_archived"] * 2
    assert [c.ok for c in slack_api.calls("chat.postMessage")] == [False, False, True]
    assert web_client.auth_test()["ok"], "other methods are not affected"


def test_delay_slows_every_call(slack_api: FakeSlackWebAPI, web_client: WebClient) -> None:
    slack_api.faults.delay(0.3)
    started = time.monotonic()

    web_client.auth_test()

    assert time.monotonic() - started >= 0.3
    slack_api.faults.delay(0)


def test_call_log_records_method_params_and_headers(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    web_client.chat_postMessage(channel=registry.id, text="hello", thread_ts="1.000001")

    call = slack_api.last("chat.postMessage")
    assert call.params == {"channel": registry.id, "text": "hello", "thread_ts": "1.000001"}
    assert call.headers["authorization"] == f"Bearer {slack_api.bot_token}"
    assert call.ok and call.time <= time.time()
    assert slack_api.log.methods() == ["chat.postMessage"]
    slack_api.clear()
    with pytest.raises(LookupError):
        slack_api.last("chat.postMessage")


def test_unknown_method_is_unknown_method(web_client: WebClient) -> None:
    assert error_of(lambda: web_client.api_call("chat.doesNotExist")) == "unknown_method"


# files, streaming, assistant threads, response_url -------------------------------------------------


def test_files_upload_v2_uploads_and_shares_the_file(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    card = web_client.chat_postMessage(channel=registry.id, text="card")

    answer = web_client.files_upload_v2(
        channel=registry.id,
        thread_ts=card["ts"],
        content="answer,evidence\nyes,https://example.com\n",
        filename="evidence.csv",
        title="Evidence",
        initial_comment="Evidence export",
    )

    assert answer["file"]["title"] == "Evidence"
    assert slack_api.log.methods()[-3:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    reply = web_client.conversations_replies(channel=registry.id, ts=card["ts"])["messages"][-1]
    assert reply["text"] == "Evidence export"
    with urllib.request.urlopen(reply["files"][0]["url_private"], timeout=5) as download:
        assert download.read() == b"answer,evidence\nyes,https://example.com\n"


def test_completing_an_upload_that_never_arrived_is_refused(web_client: WebClient) -> None:
    announced = web_client.files_getUploadURLExternal(filename="a.txt", length=3)

    error = error_of(lambda: web_client.files_completeUploadExternal(files=[{"id": announced["file_id"]}]))

    assert error == "file_not_found"


def test_chat_stream_builds_one_message_from_its_chunks(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    question = slack_api.state.post_user_message(registry.id, OWNER, "what does the pilot need?")
    stream = web_client.chat_stream(
        channel=registry.id,
        thread_ts=question["ts"],
        recipient_team_id=slack_api.state.team_id,
        recipient_user_id=OWNER,
        buffer_size=16,
    )

    for part in ["The pilot gate ", "needs a DPIA ", "and a sponsor."]:
        stream.append(markdown_text=part)
    stream.stop(blocks=[section("Was this helpful?")])

    methods = [m for m in slack_api.log.methods() if m.startswith("chat.")]
    assert methods[0] == "chat.startStream" and methods[-1] == "chat.stopStream"
    reply = slack_api.state.thread(registry.id, question["ts"])[-1]
    assert reply["text"] == "The pilot gate needs a DPIA and a sponsor."
    assert reply["blocks"][0]["text"]["text"] == "Was this helpful?"
    late = error_of(
        lambda: web_client.chat_appendStream(channel=registry.id, ts=reply["ts"], markdown_text="x")
    )
    assert late == "message_not_in_streaming_state"


def test_streaming_into_a_channel_needs_a_recipient(web_client: WebClient, registry: Channel) -> None:
    error = error_of(
        lambda: web_client.chat_startStream(channel=registry.id, thread_ts="1.000001", markdown_text="x")
    )

    assert error == "missing_recipient_team_id"


def test_assistant_thread_status_prompts_and_title_are_kept(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    dm = web_client.conversations_open(users=OWNER)["channel"]["id"]

    web_client.assistant_threads_setStatus(channel_id=dm, thread_ts="1.000001", status="is thinking...")
    web_client.assistant_threads_setSuggestedPrompts(
        channel_id=dm,
        thread_ts="1.000001",
        prompts=[{"title": "Readiness", "message": "What does my pilot need?"}],
    )
    web_client.assistant_threads_setTitle(channel_id=dm, thread_ts="1.000001", title="Pilot gate")

    thread = slack_api.state.assistant_threads[(dm, "1.000001")]
    assert thread["status"] == "is thinking..."
    assert thread["prompts"][0]["title"] == "Readiness"
    assert thread["title"] == "Pilot gate"


def _post_json(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_response_url_answers_ephemerally_in_channel_and_replaces(
    slack_api: FakeSlackWebAPI, web_client: WebClient, registry: Channel
) -> None:
    card = web_client.chat_postMessage(channel=registry.id, text="Approve?")
    url = slack_api.response_url(registry.id, OWNER, card["ts"])

    statuses = [
        _post_json(url, {"text": "Only you can see this"}),
        _post_json(url, {"text": "Posted for all", "response_type": "in_channel"}),
        _post_json(url, {"text": "Approved", "replace_original": True}),
    ]

    assert statuses == [200, 200, 200]
    assert [m["text"] for m in slack_api.state.ephemeral_for(OWNER)] == ["Only you can see this"]
    texts = [m["text"] for m in slack_api.state.channel_messages(registry.id)]
    assert texts == ["Approved", "Posted for all"]


def test_response_url_works_five_times(slack_api: FakeSlackWebAPI, registry: Channel) -> None:
    url = slack_api.response_url(registry.id, OWNER)

    statuses = [_post_json(url, {"text": f"try {i}"}) for i in range(6)]

    assert statuses == [200] * 5 + [404]
