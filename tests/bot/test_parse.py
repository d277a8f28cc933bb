"""Reading modal state and action payloads back, in the exact shapes Slack sends them."""

from __future__ import annotations

from typing import Any

import pytest

from bot import ids
from bot.blocks import intake_modal, questionnaire_modal, reason_modal
from bot.blocks.inputs import NO_ANSWER_VALUE, menu_options, option_value
from bot.parse import (
    PayloadError,
    action_value,
    answers_from_state,
    link_from_state,
    metadata,
    name_from_state,
    page_number,
    reason_from_state,
    review_id,
    shown_answers,
)
from gates.answers import coerce, fingerprint
from gates.errors import UnknownGate
from gates.lifecycle import DecisionKind
from tests.bot.blockkit_checks import all_types, find_block, huge_gate, initiative


def _option(element: dict[str, Any], value: str) -> dict[str, Any]:
    """The option object Slack echoes back: the very option from the element, text and value."""
    return next(o for o in menu_options(element) if o["value"] == value)


def slack_state(view: dict[str, Any], picks: dict[str, Any]) -> dict[str, Any]:
    """``view.state.values`` as Slack reports it after the person filled ``picks`` (block id ->
    what they chose) and left every other input empty."""
    state: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        kind = element["type"]
        pick = picks.get(block["block_id"])
        if kind in ("plain_text_input", "number_input", "url_text_input"):
            entry = {"type": kind, "value": pick}
        elif kind in ("static_select", "radio_buttons"):
            entry = {"type": kind, "selected_option": _option(element, pick) if pick is not None else None}
        elif kind == "multi_static_select":
            entry = {"type": kind, "selected_options": [_option(element, v) for v in pick or []]}
        elif kind == "datepicker":
            entry = {"type": kind, "selected_date": pick}
        elif kind == "users_select":
            entry = {"type": kind, "selected_user": pick}
        else:
            raise AssertionError(f"unexpected element {kind}")
        state[block["block_id"]] = {element["action_id"]: entry}
    return state


# (question id, what the person enters in Slack's terms, the typed answer expected)
ROUND_TRIPS = [
    ("problem", "  Invoices are routed by hand ", "Invoices are routed by hand"),
    ("approach", "Line one\nLine two", "Line one\nLine two"),
    ("budget", "12500", 12500),
    ("budget", "0.5", 0.5),
    ("accuracy", "92.5", 92.5),
    ("data_class", "confidential", "confidential"),
    ("channels", ["slack", "web"], ["web", "slack"]),
    ("personal_data", "yes", "yes"),
    ("personal_data", "no", "no"),
    ("dpia", "https://example.com/dpia?a=1&b=2", "https://example.com/dpia?a=1&b=2"),
    ("start", "2025-04-01", "2025-04-01"),
    ("tech_owner", "U0TECH", "U0TECH"),
]


@pytest.mark.parametrize(("question_id", "entered", "expected"), ROUND_TRIPS)
def test_each_question_type_round_trips_from_modal_state_to_a_typed_answer(
    question_id: str, entered: Any, expected: Any
) -> None:
    pipeline = all_types()
    view = questionnaire_modal(pipeline, initiative(), "intake", {"personal_data": "yes"})
    state = slack_state(view, {ids.question_block_id(question_id): entered})
    raw = answers_from_state(pipeline, "intake", state)
    question = pipeline.model.intake.question(question_id)
    assert question is not None
    assert coerce(question, raw[question_id]) == expected


def test_prefilled_answers_submitted_unchanged_come_back_equal() -> None:
    pipeline = all_types()
    current = {
        "problem": "Routing",
        "budget": 12500,
        "accuracy": 92.5,
        "data_class": "internal",
        "channels": ["web", "slack"],
        "personal_data": "yes",
        "start": "2025-04-01",
        "tech_owner": "U0TECH",
        "dpia": "https://example.com/d",
    }
    view = questionnaire_modal(pipeline, initiative(), "intake", current)
    picks: dict[str, Any] = {}
    for block in view["blocks"]:
        element = block.get("element", {})
        if "initial_value" in element:
            picks[block["block_id"]] = element["initial_value"]
        elif "initial_option" in element:
            picks[block["block_id"]] = element["initial_option"]["value"]
        elif "initial_options" in element:
            picks[block["block_id"]] = [o["value"] for o in element["initial_options"]]
        elif "initial_date" in element:
            picks[block["block_id"]] = element["initial_date"]
        elif "initial_user" in element:
            picks[block["block_id"]] = element["initial_user"]
    raw = answers_from_state(pipeline, "intake", slack_state(view, picks))
    questions = pipeline.model.intake
    typed = {qid: coerce(questions.question(qid), value) for qid, value in raw.items()}  # type: ignore[arg-type]
    assert {k: v for k, v in typed.items() if v is not None} == current


def test_cleared_inputs_come_back_as_none_so_the_clearing_is_recorded() -> None:
    pipeline = all_types()
    view = questionnaire_modal(pipeline, initiative(), "intake", {"personal_data": "yes"})
    state = slack_state(view, {"q:problem": "   "})
    raw = answers_from_state(pipeline, "intake", state)
    assert set(raw) == {
        "problem",
        "approach",
        "budget",
        "accuracy",
        "data_class",
        "channels",
        "personal_data",
        "dpia",
        "start",
        "tech_owner",
    }
    assert all(value is None for value in raw.values())


def test_no_answer_picked_comes_back_as_none_so_the_answer_is_cleared() -> None:
    pipeline = all_types()
    view = questionnaire_modal(pipeline, initiative(), "intake", {"data_class": "internal"})
    state = slack_state(view, {"q:data_class": NO_ANSWER_VALUE, "q:budget": "10"})
    raw = answers_from_state(pipeline, "intake", state)
    assert raw["data_class"] is None
    assert raw["budget"] == "10"


def test_only_questions_present_in_the_state_are_returned() -> None:
    pipeline = all_types()
    view = questionnaire_modal(pipeline, initiative(), "intake", {"personal_data": "no"})
    state = slack_state(view, {"q:budget": "10"})
    state["q:success"] = {ids.ANSWER_ACTION: {"type": "static_select", "selected_option": None}}
    raw = answers_from_state(pipeline, "intake", state)
    assert "dpia" not in raw  # hidden by show_if, so not on the page and never cleared
    assert "success" not in raw  # another gate's question
    assert raw["budget"] == "10"


def test_link_and_name_blocks_are_not_read_as_answers() -> None:
    pipeline = all_types()
    view = intake_modal(pipeline)
    state = slack_state(view, {ids.NAME_BLOCK: "  Invoice   triage "})
    assert ids.NAME_BLOCK not in answers_from_state(pipeline, "intake", state)
    assert name_from_state(state) == "Invoice triage"


def test_options_too_long_for_slack_round_trip_by_position() -> None:
    pipeline = huge_gate(10, label_length=40)
    view = questionnaire_modal(pipeline, initiative(), "intake", {})
    question = pipeline.model.intake.question("q004")  # choice, even options are 160+ characters
    assert question is not None and question.options is not None
    element = find_block(view["blocks"], "q:q004")["element"]
    long_option = _option(element, option_value(question, 0))
    assert len(question.options[0]) > 150 and len(long_option["value"]) <= 150
    state = slack_state(view, {"q:q004": long_option["value"]})
    raw = answers_from_state(pipeline, "intake", state)
    assert coerce(question, raw["q004"]) == question.options[0]


def test_multi_choice_with_long_options_round_trips_every_selection() -> None:
    pipeline = huge_gate(10, label_length=40)
    view = questionnaire_modal(pipeline, initiative(), "intake", {})
    question = pipeline.model.intake.question("q005")
    assert question is not None and question.options is not None
    element = find_block(view["blocks"], "q:q005")["element"]
    picked = [element["options"][n]["value"] for n in (0, 1, 2)]
    raw = answers_from_state(pipeline, "intake", slack_state(view, {"q:q005": picked}))
    assert coerce(question, raw["q005"]) == question.options[:3]


def test_unknown_gate_is_refused() -> None:
    with pytest.raises(UnknownGate):
        answers_from_state(all_types(), "nope", {})


def test_evidence_link_is_read_with_its_title_defaulting_to_the_url() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {})
    with_title = slack_state(
        view, {ids.LINK_URL_BLOCK: "https://x.test/doc", ids.LINK_TITLE_BLOCK: " Model card "}
    )
    assert link_from_state(with_title) == ("https://x.test/doc", "Model card")
    without_title = slack_state(view, {ids.LINK_URL_BLOCK: "https://x.test/doc"})
    assert link_from_state(without_title) == ("https://x.test/doc", "https://x.test/doc")
    assert link_from_state(slack_state(view, {})) is None


def test_link_title_without_url_is_an_error_on_the_url_field() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {})
    with pytest.raises(PayloadError) as caught:
        link_from_state(slack_state(view, {ids.LINK_TITLE_BLOCK: "Model card"}))
    assert caught.value.block_id == ids.LINK_URL_BLOCK


def test_reason_is_read_and_blank_reason_is_none() -> None:
    view = reason_modal(42, DecisionKind.REJECT, "Invoice triage", "AI-0007")
    assert reason_from_state(slack_state(view, {ids.REASON_BLOCK: "  Not safe yet \n"})) == "Not safe yet"
    assert reason_from_state(slack_state(view, {ids.REASON_BLOCK: "   "})) is None
    assert reason_from_state({}) is None


@pytest.mark.parametrize(
    "view",
    [
        {},
        {"private_metadata": ""},
        {"private_metadata": "not json"},
        {"private_metadata": "[1, 2]"},
        {"private_metadata": None},
        None,
    ],
)
def test_metadata_of_garbage_is_empty(view: Any) -> None:
    assert metadata(view) == {}


def test_metadata_reads_the_questionnaire_page() -> None:
    view = questionnaire_modal(all_types(), initiative(), "pilot", {})
    meta = metadata(view)
    assert {key: meta[key] for key in ("ref", "gate", "page")} == {
        "ref": "AI-0007",
        "gate": "pilot",
        "page": 0,
    }


def test_a_questionnaire_page_remembers_what_each_field_showed() -> None:
    pipeline = all_types()
    shown = {"success": "partly"}
    questions = [q.id for q in pipeline.model.gate("pilot").questions]
    view = questionnaire_modal(pipeline, initiative(), "pilot", shown)
    remembered = shown_answers(pipeline, "pilot", metadata(view))
    assert set(remembered) == set(questions)
    for qid in questions:
        assert remembered[qid] == fingerprint(shown.get(qid))


def test_a_page_of_as_many_questions_as_fit_with_the_longest_ids_remembers_them_within_slacks_limit() -> None:
    # Keyed by question id, 40 questions with ids of 64 characters would already take 3,100.
    pipeline = huge_gate(90, label_length=40, options=3, long_ids=True, help=False)
    view = questionnaire_modal(pipeline, initiative(), "intake", {}, page_size=90)
    fields = [b for b in view["blocks"] if ids.question_id_of(str(b.get("block_id", "")))]
    assert len(fields) >= 60
    assert len(shown_answers(pipeline, "intake", metadata(view))) == len(fields)
    assert len(view["private_metadata"]) <= 3000


@pytest.mark.parametrize(
    "shown",
    [None, "x", [1, 2], {"0": 5}, {"x": "AAAA"}, {"-1": "AAAA"}, {"999": "AAAA"}, {"1.0": "AAAA"}],
)
def test_what_a_form_showed_ignores_anything_it_cannot_place(shown: Any) -> None:
    pipeline = all_types()
    assert shown_answers(pipeline, "pilot", {"shown": shown}) == {}
    assert shown_answers(pipeline, "no-such-gate", {"shown": {"0": "AAAA"}}) == {}


def test_review_id_is_parsed_from_a_button_value() -> None:
    body = {"actions": [{"action_id": ids.ACTION_APPROVE, "value": "42", "type": "button"}]}
    assert review_id(action_value(body)) == 42


@pytest.mark.parametrize("value", ["", "abc", "-3", "0", "4.2", None, "9" * 40])
def test_garbage_review_id_is_a_clear_error(value: Any) -> None:
    with pytest.raises(PayloadError, match="not a review number"):
        review_id(value)


def test_a_forged_review_id_is_echoed_escaped_and_short() -> None:
    # The explanation is mrkdwn: a value carrying a broadcast must not ping the channel.
    with pytest.raises(PayloadError) as raised:
        review_id("<!channel> " + "x" * 100)
    message = str(raised.value)
    assert "<!channel>" not in message and "&lt;!channel&gt;" in message
    assert message.startswith("'&lt;!channel&gt; xxx") and "x" * 40 not in message


@pytest.mark.parametrize("body", [{}, {"actions": []}, {"actions": [{"action_id": "x"}]}, {"actions": "x"}])
def test_action_without_a_value_is_a_clear_error(body: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        action_value(body)


def test_page_number_falls_back_to_the_first_page() -> None:
    assert page_number("3") == 3
    assert page_number("x") == 0
    assert page_number(None) == 0
