"""Block Kit builders: every view and message stays inside Slack's limits, whatever the data."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import ids
from bot.blocks import (
    ask_placeholder,
    ask_reply,
    decision_notice,
    error_message,
    evidence_modal,
    exception_modal,
    help_message,
    home_view,
    initiative_card,
    intake_modal,
    questionnaire_modal,
    questionnaire_pages,
    readiness_blocks,
    reason_modal,
    review_outcome,
    review_progress,
    review_request,
    status_message,
)
from bot.blocks.inputs import NO_ANSWER_VALUE
from bot.blocks.text import bullet_list, clamp_blocks, escape, plain, split_text, truncate
from gates.errors import PipelineError
from gates.lifecycle import Decision, DecisionKind, ReviewStatus, Status
from gates.loader import CompiledPipeline, parse_pipeline
from gates.ports import AnswerVersion, EvidenceLink
from gates.readiness import CriterionStatus, readiness
from knowledge.types import Answer, Hit
from tests.bot.blockkit_checks import (
    NOW,
    OWNER,
    RISK_1,
    RISK_2,
    SPONSOR,
    all_types,
    assert_valid_message,
    assert_valid_view,
    buttons,
    find_block,
    huge_gate,
    initiative,
    review,
    texts,
)

FILLED = {
    "problem": "Invoices are routed by hand",
    "approach": "A classifier\nwith human review",
    "budget": 12500,
    "accuracy": 92.5,
    "data_class": "internal",
    "channels": ["web", "slack"],
    "personal_data": "yes",
    "dpia": "https://example.com/dpia?a=1&b=2",
    "start": "2025-04-01",
    "tech_owner": "U0TECH",
}

LONG_NAME = "Automated triage of supplier invoices across every business unit " * 4


def _element(view: dict, question_id: str) -> dict:
    return find_block(view["blocks"], ids.question_block_id(question_id))["element"]


# --- questionnaire ---------------------------------------------------------------------------------


def test_huge_gate_is_split_into_pages_that_each_fit_in_one_view() -> None:
    pipeline = huge_gate(150)
    pages = questionnaire_pages(pipeline.model.intake)
    assert len(pages) > 1
    seen = []
    for number in range(len(pages)):
        view = questionnaire_modal(pipeline, initiative(), "intake", {}, page=number)
        assert_valid_view(view)
        seen += [b["block_id"] for b in view["blocks"] if b.get("block_id", "").startswith("q:")]
        assert view["submit"]["text"] == ("Save" if number == len(pages) - 1 else "Save & next")
        meta = json.loads(view["private_metadata"])
        assert {key: meta[key] for key in ("ref", "gate", "page")} == {
            "ref": "AI-0007",
            "gate": "intake",
            "page": number,
        }
    assert seen == [ids.question_block_id(f"q{i:03d}") for i in range(150)]


def test_huge_gate_pages_stay_under_250_kb_with_the_longest_possible_answers() -> None:
    pipeline = huge_gate(150)
    gate = pipeline.model.intake
    answers: dict = {}
    for question in gate.questions:
        if question.type.value in ("text", "long_text"):
            answers[question.id] = "é" * 3000
        elif question.type.value == "multi_choice":
            answers[question.id] = list(question.options or [])
        elif question.type.value == "choice":
            answers[question.id] = (question.options or [])[1]
    for number in range(len(questionnaire_pages(gate))):
        view = questionnaire_modal(pipeline, initiative(), "intake", answers, page=number)
        assert_valid_view(view)


def test_explicit_page_size_caps_questions_per_page() -> None:
    pipeline = huge_gate(30, label_length=40)
    view = questionnaire_modal(pipeline, initiative(), "intake", {}, page=0, page_size=7)
    inputs = [b for b in view["blocks"] if b.get("block_id", "").startswith("q:")]
    assert len(inputs) == 7
    assert "1/5" in view["title"]["text"]


def test_page_beyond_the_last_shows_the_last_page() -> None:
    pipeline = huge_gate(30, label_length=40)
    view = questionnaire_modal(pipeline, initiative(), "intake", {}, page=99, page_size=10)
    assert json.loads(view["private_metadata"])["page"] == 2
    assert view["submit"]["text"] == "Save"


def test_each_question_type_maps_to_its_slack_element() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"personal_data": "yes"})
    assert_valid_view(view)
    kinds = {qid: _element(view, qid)["type"] for qid in FILLED}
    assert kinds == {
        "problem": "plain_text_input",
        "approach": "plain_text_input",
        "budget": "number_input",
        "accuracy": "number_input",
        "data_class": "static_select",
        "channels": "multi_static_select",
        "personal_data": "radio_buttons",
        "dpia": "url_text_input",
        "start": "datepicker",
        "tech_owner": "users_select",
    }
    assert _element(view, "approach")["multiline"] is True
    assert _element(view, "problem")["max_length"] == 500
    assert _element(view, "budget")["is_decimal_allowed"] is True
    assert (_element(view, "accuracy")["min_value"], _element(view, "accuracy")["max_value"]) == ("0", "100")
    assert [o["value"] for o in _element(view, "personal_data")["options"]] == ["yes", "no"]
    assert all(_element(view, qid)["action_id"] == ids.ANSWER_ACTION for qid in FILLED)


def test_questionnaire_is_prefilled_with_current_answers_of_every_type() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", FILLED)
    assert_valid_view(view)
    assert _element(view, "problem")["initial_value"] == "Invoices are routed by hand"
    assert _element(view, "approach")["initial_value"] == "A classifier\nwith human review"
    assert _element(view, "budget")["initial_value"] == "12500"
    assert _element(view, "accuracy")["initial_value"] == "92.5"
    assert _element(view, "data_class")["initial_option"]["value"] == "internal"
    assert [o["value"] for o in _element(view, "channels")["initial_options"]] == ["web", "slack"]
    assert _element(view, "personal_data")["initial_option"]["value"] == "yes"
    assert _element(view, "dpia")["initial_value"] == "https://example.com/dpia?a=1&b=2"
    assert _element(view, "start")["initial_date"] == "2025-04-01"
    assert _element(view, "tech_owner")["initial_user"] == "U0TECH"


def test_initial_options_are_exactly_options_of_the_menu() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"data_class": "INTERNAL"})
    element = _element(view, "data_class")
    assert element["initial_option"] in element["options"]


def _one_gate(questions: list[dict]) -> CompiledPipeline:
    data = {
        "version": 1,
        "stages": ["idea", "poc"],
        "roles": {"sponsor": {"slack_users": [SPONSOR]}},
        "gates": [{"id": "intake", "from": "idea", "to": "poc", "questions": questions}],
    }
    return parse_pipeline(json.dumps(data), "one-gate.yaml")


def test_an_optional_yes_no_or_choice_offers_no_answer_to_take_an_answer_back() -> None:
    """Radio buttons cannot be deselected and a select cannot be emptied, so without an option
    meaning "no answer", an optional answer once given could never be taken back."""
    pipeline = _one_gate(
        [
            {"id": "vendor", "label": "Uses a vendor?", "type": "yes_no"},
            # An option spelt like the no-answer value is sent by its position, as any "#opt:" one.
            {"id": "region", "label": "Region", "type": "choice", "options": ["eu", NO_ANSWER_VALUE]},
            {"id": "consent", "label": "Consent?", "type": "yes_no", "required": True},
            {"id": "tier", "label": "Tier", "type": "choice", "options": ["low", "high"], "required": True},
        ]
    )
    answers = {"vendor": "yes", "region": "eu", "consent": "no", "tier": "low"}
    view = questionnaire_modal(pipeline, initiative(), "intake", answers)
    assert_valid_view(view)
    no_answer = {"text": plain("No answer", 75), "value": NO_ANSWER_VALUE}
    assert _element(view, "vendor")["options"][2] == no_answer  # after Yes and No
    assert _element(view, "vendor")["initial_option"]["value"] == "yes"
    assert [o["value"] for o in _element(view, "region")["options"]] == [NO_ANSWER_VALUE, "eu", "#opt:1"]
    assert _element(view, "region")["initial_option"]["value"] == "eu"
    # A required question has to be answered: it offers no way back to unanswered.
    assert [o["value"] for o in _element(view, "consent")["options"]] == ["yes", "no"]
    assert [o["value"] for o in _element(view, "tier")["options"]] == ["low", "high"]
    # Offered before an answer too: a pick made by mistake in the open form can be undone.
    unanswered = questionnaire_modal(pipeline, initiative(), "intake", {})
    assert "initial_option" not in _element(unanswered, "vendor")
    assert no_answer in _element(unanswered, "vendor")["options"]


def test_an_optional_choice_of_100_options_offers_no_answer_in_a_group_of_its_own() -> None:
    """A select holds 100 options, as many as a choice may have; groups hold 100 each."""
    options = [f"option {n}" for n in range(100)]
    pipeline = _one_gate([{"id": "pick", "label": "Pick one", "type": "choice", "options": options}])
    view = questionnaire_modal(pipeline, initiative(), "intake", {"pick": "option 99"})
    assert_valid_view(view)
    element = _element(view, "pick")
    assert "options" not in element
    back, answers = element["option_groups"]
    assert [o["value"] for o in back["options"]] == [NO_ANSWER_VALUE]
    assert [o["value"] for o in answers["options"]] == options
    assert element["initial_option"] == answers["options"][99]


def _one_choice(options: list[str]) -> CompiledPipeline:
    return _one_gate([{"id": "met", "label": "Met?", "type": "choice", "options": options}])


def test_long_options_stay_distinguishable_in_the_menu() -> None:
    """Slack shows 75 characters of an option: two options that differ only after that would
    both read "...every single tar…", so such a pipeline is refused; options that differ sooner
    are shown apart, cut where the loader expects."""
    alike = "Yes, the model was evaluated on the held-out data and met every single target"
    with pytest.raises(PipelineError, match="looks the same as options"):
        _one_choice([f"{alike} we set", f"{alike} except one"])
    apart = [
        f"Yes, the model was evaluated on the held-out data and met target {n} of the plan" for n in (1, 2)
    ]
    view = questionnaire_modal(_one_choice([*apart, "No"]), initiative(), "intake", {})
    shown = [option["text"]["text"] for option in _element(view, "met")["options"]]
    assert shown == [
        "No answer",  # the question is optional
        "Yes, the model was evaluated on the held-out data and met target 1 of the…",
        "Yes, the model was evaluated on the held-out data and met target 2 of the…",
        "No",
    ]


def test_required_questions_are_marked_but_every_input_stays_optional() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"personal_data": "yes"})
    inputs = [b for b in view["blocks"] if b["type"] == "input"]
    assert all(b["optional"] for b in inputs if b["block_id"].startswith("q:"))
    needed = "Needed before the gate can be submitted"
    problem = find_block(view["blocks"], "q:problem")
    assert problem["hint"]["text"].startswith(needed)
    assert "required" not in problem["label"]["text"].lower(), "Slack adds '(optional)' itself"
    assert find_block(view["blocks"], "q:accuracy")["label"]["text"] == "Target accuracy (%)"
    assert needed not in (find_block(view["blocks"], "q:budget").get("hint") or {}).get("text", "")
    assert find_block(view["blocks"], "q:dpia")["hint"]["text"].startswith(needed)


def test_questions_hidden_by_show_if_are_left_out() -> None:
    hidden = questionnaire_modal(all_types(), initiative(), "intake", {"personal_data": "no"})
    shown = questionnaire_modal(all_types(), initiative(), "intake", {"personal_data": "yes"})
    assert "q:dpia" not in {b.get("block_id") for b in hidden["blocks"]}
    assert "q:dpia" in {b.get("block_id") for b in shown["blocks"]}


def test_a_hidden_answer_does_not_mark_another_question_needed() -> None:
    """The transfer note is needed when the vendor is outside the EU: once the team says there
    is no vendor, the vendor's stored location no longer makes it needed."""
    questions = [
        {"id": "uses_vendor", "label": "Uses a vendor?", "type": "yes_no"},
        {
            "id": "vendor_in_eu",
            "label": "In the EU?",
            "type": "yes_no",
            "show_if": 'answers.uses_vendor == "yes"',
        },
        {
            "id": "transfer_note",
            "label": "Transfer safeguards",
            "required_if": 'answers.vendor_in_eu == "no"',
        },
    ]
    data = {
        "version": 1,
        "stages": ["idea", "poc"],
        "roles": {"sponsor": {"slack_users": [SPONSOR]}},
        "gates": [
            {
                "id": "intake",
                "from": "idea",
                "to": "poc",
                "questions": questions,
                "approvals": [{"role": "sponsor"}],
            }
        ],
    }
    pipeline = parse_pipeline(json.dumps(data), "vendor.yaml")
    needed = "Needed before the gate can be submitted"

    def hint(answers: dict[str, str]) -> str:
        view = questionnaire_modal(pipeline, initiative(), "intake", answers)
        return str(find_block(view["blocks"], "q:transfer_note")["hint"]["text"])

    assert hint({"uses_vendor": "yes", "vendor_in_eu": "no"}).startswith(needed)
    assert not hint({"uses_vendor": "no", "vendor_in_eu": "no"}).startswith(needed)


def test_help_text_goes_into_the_hint() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {})
    hint = find_block(view["blocks"], "q:problem")["hint"]["text"]
    assert hint.endswith("\nOne or two sentences a sponsor would recognise.")


def test_last_page_offers_an_evidence_link() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {})
    assert find_block(view["blocks"], ids.LINK_URL_BLOCK)["element"]["type"] == "url_text_input"
    assert find_block(view["blocks"], ids.LINK_TITLE_BLOCK)["optional"] is True


def test_title_fits_24_characters_with_ref_and_page_kept() -> None:
    pipeline = huge_gate(60)
    pages = len(questionnaire_pages(pipeline.model.intake))
    view = questionnaire_modal(pipeline, initiative(), "intake", {}, page=1)
    title = view["title"]["text"]
    assert len(title) <= 24 and title.startswith("AI-0007 · ") and title.endswith(f" 2/{pages}")
    short = questionnaire_modal(all_types(), initiative(), "pilot", {})
    assert short["title"]["text"] == "AI-0007 · Pilot"


def test_metadata_carries_extra_keys_and_refuses_to_exceed_3000_characters() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {}, private_metadata_extra={"ts": "1.2"})
    meta = json.loads(view["private_metadata"])
    assert {key: meta[key] for key in ("ref", "gate", "page", "ts")} == {
        "ref": "AI-0007",
        "gate": "intake",
        "page": 0,
        "ts": "1.2",
    }
    with pytest.raises(ValueError, match="3000"):
        questionnaire_modal(all_types(), initiative(), "intake", {}, private_metadata_extra={"x": "y" * 3000})


def test_answer_too_long_for_an_input_is_shown_not_offered_for_editing() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"approach": "z" * 3500})
    assert_valid_view(view)
    assert "q:approach" not in {b.get("block_id") for b in view["blocks"]}
    assert "longer than a Slack input" in texts(view["blocks"])


def test_intake_modal_asks_for_a_name_and_the_intake_questions() -> None:
    view = intake_modal(all_types(), private_metadata='{"channel":"C1"}')
    assert_valid_view(view)
    assert view["callback_id"] == ids.VIEW_INTAKE
    name = find_block(view["blocks"], ids.NAME_BLOCK)
    assert name["optional"] is False and name["element"]["type"] == "plain_text_input"
    assert {b.get("block_id") for b in view["blocks"]} >= {ids.question_block_id(q) for q in FILLED}
    assert view["private_metadata"] == '{"channel":"C1"}'


def test_intake_modal_of_a_huge_gate_shows_the_first_page_and_says_more_follow() -> None:
    view = intake_modal(huge_gate(150))
    assert_valid_view(view)
    assert "more question(s) follow" in texts(view["blocks"])


# --- other modals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "title"), [(DecisionKind.REJECT, "Reject"), (DecisionKind.REQUEST_CHANGES, "Request changes")]
)
def test_reason_modal_requires_a_reason(kind: DecisionKind, title: str) -> None:
    view = reason_modal(42, kind, LONG_NAME, "AI-0007", "")
    assert_valid_view(view)
    assert view["callback_id"] == ids.VIEW_REASON and view["title"]["text"] == title
    reason = find_block(view["blocks"], ids.REASON_BLOCK)
    assert reason["optional"] is False and reason["element"]["multiline"] is True
    assert json.loads(view["private_metadata"]) == {"review": 42, "kind": kind.value}


def test_exception_modal_lists_the_blockers_and_requires_a_justification() -> None:
    blockers = [f"Blocker {n}: " + "the assessment is missing " * 20 for n in range(40)]
    view = exception_modal("AI-0007", "Pilot", blockers, '{"ref":"AI-0007"}')
    assert_valid_view(view)
    assert view["callback_id"] == ids.VIEW_EXCEPTION
    assert find_block(view["blocks"], ids.REASON_BLOCK)["optional"] is False
    assert "Blocker 0" in texts(view["blocks"]) and "more" in texts(view["blocks"])


def test_evidence_modal_shows_each_answer_with_author_time_and_review_pinning() -> None:
    pipeline = all_types()
    answers = {
        qid: AnswerVersion("AI-0007", "intake", qid, value, "U0ANSWER", NOW) for qid, value in FILLED.items()
    }
    links = [EvidenceLink("AI-0007", "intake", "https://example.com/model-card", "Model card", "U0LINK", NOW)]
    view = evidence_modal(pipeline, initiative(), review(gate_id="intake"), "intake", answers, links)
    assert_valid_view(view)
    text = texts(view["blocks"])
    assert view["callback_id"] == ids.VIEW_EVIDENCE and "submit" not in view
    assert "Budget in euros" in text and "12500" in text and "92.5%" in text and "<@U0TECH>" in text
    assert "<@U0ANSWER>" in text and f"<!date^{int(NOW.timestamp())}^" in text
    assert "e" * 64 in text and "1-abcdef123456" in text
    assert "<https://example.com/model-card|Model card>" in text
    assert "a=1&amp;b=2" in text


def test_evidence_modal_lists_answers_the_pipeline_no_longer_asks_that_the_hash_may_cover() -> None:
    """A review submitted on an earlier pipeline hashed the answers to questions removed since
    (and to a gate removed since): the approver must see them, not only the ones still asked."""
    pipeline = all_types()
    answers = {
        "budget": AnswerVersion("AI-0007", "intake", "budget", 12500, "U0ANSWER", NOW),
        "legacy_vendor": AnswerVersion("AI-0007", "intake", "legacy_vendor", "Acme <b>", "U0OLD", NOW),
        "old_gate_q": AnswerVersion("AI-0007", "retired_gate", "old_gate_q", ["a", "b"], "U0OLD", NOW),
    }
    item = review(gate_id="intake")
    assert item.pipeline_version != pipeline.version
    view = evidence_modal(pipeline, initiative(), item, "intake", answers, [])
    assert_valid_view(view)
    text = texts(view["blocks"])
    assert "No longer asked by the pipeline" in text, text
    assert "`legacy_vendor`: Acme &lt;b&gt;" in text and "`old_gate_q`: a, b" in text, text
    # Submitted on this very pipeline, such answers were not asked, so not hashed: not listed.
    same = review(gate_id="intake", pipeline_version=pipeline.version)
    view = evidence_modal(pipeline, initiative(), same, "intake", answers, [])
    assert "legacy_vendor" not in texts(view["blocks"])


def test_evidence_modal_of_150_answers_is_cut_at_100_blocks_even_if_answers_no_longer_fit() -> None:
    pipeline = huge_gate(150)
    answers = {
        q.id: AnswerVersion("AI-0007", "intake", q.id, "x" * 2000, "U0A", NOW)
        for q in pipeline.model.intake.questions
    }
    view = evidence_modal(pipeline, initiative(), None, "intake", answers, [])
    assert_valid_view(view)
    assert "more" in texts(view["blocks"][-5:])


# --- initiative card, readiness, status ------------------------------------------------------------


def test_card_shows_name_fields_readiness_and_buttons() -> None:
    pipeline = all_types()
    state = readiness(pipeline, "pilot", {})
    card = initiative_card(pipeline, initiative(), state, None)
    assert_valid_message(card)
    text = texts(card["blocks"])
    assert "AI-0007" in text and "PoC" in text and f"<@{OWNER}>" in text and f"<@{SPONSOR}>" in text
    assert "Pilot gate:* 0/1 answered" in text and "1 required unanswered" in text
    submit = next(b for b in buttons(card["blocks"]) if b["action_id"] == ids.ACTION_SUBMIT_REVIEW)
    assert submit["value"] == "AI-0007" and "style" not in submit


def test_card_for_a_200_character_name_stays_valid() -> None:
    card = initiative_card(all_types(), initiative(name=LONG_NAME[:200]), None, None, stalled=True)
    assert_valid_message(card)
    assert len(card["blocks"][0]["text"]["text"]) <= 150


def test_ready_initiative_gets_a_primary_submit_button() -> None:
    pipeline = all_types()
    state = readiness(pipeline, "pilot", {"success": "yes"})
    card = initiative_card(pipeline, initiative(), state, None)
    submit = next(b for b in buttons(card["blocks"]) if b["action_id"] == ids.ACTION_SUBMIT_REVIEW)
    assert submit["style"] == "primary" and "ready for review" in texts(card["blocks"])


def test_card_in_review_shows_since_when_instead_of_submit() -> None:
    item = replace(initiative(), status=Status.IN_REVIEW)
    card = initiative_card(all_types(), item, readiness(all_types(), "pilot", {}), review())
    assert_valid_message(card)
    assert [b["action_id"] for b in buttons(card["blocks"])] == [ids.ACTION_OPEN_QUESTIONNAIRE]
    assert "In review since" in texts(card["blocks"])


def test_retired_initiative_card_has_no_buttons() -> None:
    item = replace(initiative(), status=Status.RETIRED, status_reason="Value gone")
    card = initiative_card(all_types(), item, None, None)
    assert_valid_message(card)
    assert buttons(card["blocks"]) == []


def test_retired_initiative_card_does_not_claim_it_reached_the_final_stage() -> None:
    """Retired in PoC, with the pilot gate still ahead of that stage: the card says it was retired,
    not that there is no further gate because it is in its final stage."""
    item = replace(initiative(stage="poc"), status=Status.RETIRED, status_reason="Value gone")
    for shown in (
        texts(initiative_card(all_types(), item, None, None)["blocks"]),
        texts(home_view(OWNER, [(item, None)], [], [])["blocks"]),  # the owner's App Home
    ):
        assert "final stage" not in shown
        assert "Retired in the PoC stage" in shown


def test_readiness_blocks_list_what_the_gate_still_needs_with_holders() -> None:
    pipeline = all_types()
    state = readiness(pipeline, "intake", {"budget": 0, "personal_data": "yes"}, owner_id=OWNER)
    blocks = readiness_blocks(pipeline, initiative(stage="idea"), state)
    assert_valid_message({"text": "x", "blocks": blocks})
    text = texts(blocks)
    assert "What problem does it solve?" in text  # missing required
    assert "Link to the privacy impact assessment" in text  # required_if now holds
    assert "The problem has to be stated" in text and "waiting for 'What problem does it solve?'" in text
    assert "A budget helps the sponsor decide" in text  # advisory
    assert "Criteria met" not in text
    assert "*Risk tier:* high" in text and f"1 × Business sponsor: <@{SPONSOR}>" in text


def test_readiness_blocks_name_the_criteria_already_met() -> None:
    pipeline = all_types()
    state = readiness(pipeline, "intake", {"problem": "Invoices are matched by hand."}, owner_id=OWNER)
    assert [c.id for c in state.criteria if c.status is CriterionStatus.MET] == ["problem_stated"]
    blocks = readiness_blocks(pipeline, initiative(stage="idea"), state)
    assert_valid_message({"text": "x", "blocks": blocks})
    text = texts(blocks)
    assert "*Criteria met*\n• Problem stated" in text
    assert "The problem has to be stated" not in text  # its explanation is for when it is not met


def test_readiness_blocks_truncate_long_lists_with_and_n_more() -> None:
    pipeline = huge_gate(150)
    state = readiness(pipeline, "intake", {})
    blocks = readiness_blocks(pipeline, initiative(stage="idea"), state)
    assert_valid_message({"text": "x", "blocks": blocks})
    assert "• and 40 more" in texts(blocks)


def test_status_message_combines_card_and_readiness() -> None:
    pipeline = all_types()
    message = status_message(pipeline, initiative(), readiness(pipeline, "pilot", {}), None)
    assert_valid_message(message)
    assert "What AI-0007 needs for the Pilot gate" in texts(message["blocks"])
    assert message["blocks"][-1]["type"] == "actions"


def test_status_message_in_the_last_stage_says_there_is_no_further_gate() -> None:
    message = status_message(all_types(), initiative(stage="pilot"), None, None)
    assert_valid_message(message)
    assert "No further gate" in texts(message["blocks"])


# --- reviews ---------------------------------------------------------------------------------------


def test_review_request_mentions_approvers_and_carries_decision_buttons() -> None:
    pipeline = all_types()
    message = review_request(
        pipeline, initiative(), review(), readiness(pipeline, "pilot", {}), [RISK_1, RISK_2, SPONSOR]
    )
    assert_valid_message(message)
    assert f"<@{RISK_1}> <@{RISK_2}> <@{SPONSOR}>" in texts(message["blocks"])
    assert f"<@{RISK_1}>" in message["text"]
    found = {b["action_id"]: b for b in buttons(message["blocks"])}
    assert list(found) == [
        ids.ACTION_APPROVE,
        ids.ACTION_REJECT,
        ids.ACTION_REQUEST_CHANGES,
        ids.ACTION_VIEW_EVIDENCE,
    ]
    assert {b["value"] for b in found.values()} == {"42"}
    assert found[ids.ACTION_APPROVE]["style"] == "primary" and found[ids.ACTION_REJECT]["style"] == "danger"
    assert "confirm" in found[ids.ACTION_REJECT]
    assert "2 × AI risk, 1 × Business sponsor" in texts(message["blocks"])


def test_review_request_shows_the_exception_justification() -> None:
    item = review(exception_reason="Regulator deadline <!channel> " + "x" * 4000)
    message = review_request(all_types(), initiative(name=LONG_NAME), item, None, [RISK_1])
    assert_valid_message(message)
    text = texts(message["blocks"])
    assert "Submitted as an exception" in text and "&lt;!channel&gt;" in text and "<!channel>" not in text


def test_review_progress_keeps_buttons_for_the_others_and_lists_decisions_so_far() -> None:
    item = review()
    item.decide(RISK_1, ["risk"], DecisionKind.APPROVE, "Looks fine", NOW)
    message = review_progress(all_types(), initiative(), item)
    assert_valid_message(message)
    text = texts(message["blocks"])
    assert (
        f"<@{RISK_1}> approved as AI risk" in text
        and "Still needed: 1 × AI risk, 1 × Business sponsor" in text
    )
    assert ids.ACTION_APPROVE in {b["action_id"] for b in buttons(message["blocks"])}


def test_review_progress_for_a_viewer_who_decided_keeps_only_view_evidence() -> None:
    item = review()
    item.decide(RISK_1, ["risk"], DecisionKind.APPROVE, None, NOW)
    message = review_progress(all_types(), initiative(), item, viewer_id=RISK_1)
    assert [b["action_id"] for b in buttons(message["blocks"])] == [ids.ACTION_VIEW_EVIDENCE]


def test_review_progress_offers_a_viewer_the_decision_only_while_their_roles_are_still_needed() -> None:
    item = review()
    item.decide(SPONSOR, ["sponsor"], DecisionKind.APPROVE, None, NOW)  # the one sponsor needed
    theirs = review_progress(all_types(), initiative(), item, viewer_id="USPONSOR2", viewer_roles=["sponsor"])
    assert_valid_message(theirs)
    assert [b["action_id"] for b in buttons(theirs["blocks"])] == [ids.ACTION_VIEW_EVIDENCE]
    assert "None of your roles is still needed" in texts(theirs["blocks"])
    risk = review_progress(all_types(), initiative(), item, viewer_id=RISK_2, viewer_roles=["risk"])
    assert ids.ACTION_APPROVE in {b["action_id"] for b in buttons(risk["blocks"])}


def test_review_outcome_has_no_decision_buttons_but_keeps_view_evidence() -> None:
    item = review()
    item.decide(RISK_1, ["risk"], DecisionKind.REJECT, "Not safe: " + "r" * 5000, NOW + timedelta(hours=1))
    message = review_outcome(all_types(), initiative(name=LONG_NAME), item)
    assert_valid_message(message)
    assert [b["action_id"] for b in buttons(message["blocks"])] == [ids.ACTION_VIEW_EVIDENCE]
    text = texts(message["blocks"])
    assert "Review rejected" in text and f"<@{RISK_1}> rejected as AI risk" in text and "Not safe" in text


def test_the_decisions_say_the_role_each_approval_counted_for_once_a_later_one_moved_it() -> None:
    # Two risk approvals and the sponsor's are needed; the first approver holds both roles and is
    # counted for risk, until a second risk holder, who can fill nothing else, moves them over.
    item = review()
    dual = "UDUAL01"
    for n, (approver, roles) in enumerate(
        [(dual, ["risk", "sponsor"]), (RISK_1, ["risk"]), (RISK_2, ["risk"])]
    ):
        item.decide(approver, roles, DecisionKind.APPROVE, None, NOW + timedelta(hours=n))
    assert item.status is ReviewStatus.APPROVED
    text = texts(review_outcome(all_types(), initiative(), item)["blocks"])
    assert f"<@{dual}> approved as Business sponsor" in text
    assert f"<@{RISK_1}> approved as AI risk" in text and f"<@{RISK_2}> approved as AI risk" in text


def test_closed_review_rendered_as_progress_has_no_decision_buttons() -> None:
    item = review(status=ReviewStatus.WITHDRAWN, closed_at=NOW)
    message = review_progress(all_types(), initiative(), item)
    assert [b["action_id"] for b in buttons(message["blocks"])] == [ids.ACTION_VIEW_EVIDENCE]


def test_review_with_many_long_decisions_stays_within_50_blocks() -> None:
    item = review(requirements=())
    item.decisions.extend(
        Decision(f"U{n:04d}", DecisionKind.APPROVE, "risk", "because " * 300, NOW) for n in range(60)
    )
    assert_valid_message(review_outcome(all_types(), initiative(), item))


def test_decision_notice_says_what_happened_and_what_comes_next() -> None:
    item, pipeline = review(), all_types()
    advanced = decision_notice(
        pipeline,
        initiative(),
        item,
        Decision(SPONSOR, DecisionKind.APPROVE, "sponsor", None, NOW),
        True,
        "Production",
    )
    assert "moves to *Pilot*" in advanced and "*Production* questionnaire" in advanced
    partial = decision_notice(
        pipeline,
        initiative(),
        item,
        Decision(SPONSOR, DecisionKind.APPROVE, "sponsor", None, NOW),
        False,
        None,
    )
    assert "Still needed: 2 × AI risk, 1 × Business sponsor" in partial  # by label, as the review says
    rejected = decision_notice(
        pipeline,
        initiative(),
        item,
        Decision(RISK_1, DecisionKind.REJECT, "risk", "No <b>", NOW),
        False,
        None,
    )
    assert f"<@{RISK_1}> rejected" in rejected and ">No &lt;b&gt;" in rejected
    changes = decision_notice(
        pipeline,
        initiative(),
        item,
        Decision(RISK_1, DecisionKind.REQUEST_CHANGES, "risk", "More data", NOW),
        False,
        None,
    )
    assert "back with the team" in changes


# --- answers ---------------------------------------------------------------------------------------


def _hits(count: int) -> tuple[Hit, ...]:
    return tuple(
        Hit(f"c{n}", f"policies/privacy-{n}.md", "Chapter III > Article 27 " * 30, "text", 1.0 / (n + 1))
        for n in range(count)
    )


def test_ask_reply_splits_a_10000_character_answer_and_stays_under_50_blocks() -> None:
    paragraph = "The pilot gate needs a privacy impact assessment [1]. " * 20
    answer = Answer(text="\n\n".join([paragraph] * 10), hits=_hits(12), grounded=True)
    assert len(answer.text) >= 10_000
    message = ask_reply(answer, None, "fb:123")
    assert_valid_message(message)
    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert len(sections) >= 4
    text = texts(message["blocks"])
    assert "*[1]* policies/privacy-0.md" in text and "and 3 more source(s)" in text
    feedback = {b["action_id"]: b["value"] for b in buttons(message["blocks"])}
    assert feedback == {ids.ACTION_FEEDBACK_HELPFUL: "fb:123", ids.ACTION_FEEDBACK_UNHELPFUL: "fb:123"}


def test_ask_reply_of_a_huge_answer_is_cut_with_a_note() -> None:
    message = ask_reply(Answer(text="word " * 60_000), None, "k")
    assert_valid_message(message)
    assert "more" in texts(message["blocks"][-3:])


def test_ask_reply_escapes_llm_text_and_converts_markdown() -> None:
    answer = Answer(
        text="## Heading\n**Bold** and <!channel> & [docs](https://example.com/x)\n- item", hits=_hits(1)
    )
    text = texts(ask_reply(answer, None, "k")["blocks"])
    assert "*Heading*" in text and "*Bold*" in text and "&lt;!channel&gt; &amp;" in text
    assert "docs (https://example.com/x)" in text and "• item" in text
    assert "most relevant policy passages" in text


def test_ask_reply_puts_readiness_first_and_notes_uncovered_questions() -> None:
    pipeline = all_types()
    blocks = readiness_blocks(pipeline, initiative(), readiness(pipeline, "pilot", {}))
    message = ask_reply(Answer(text="Nothing in the policies.", covered=False, grounded=True), blocks, "k")
    assert_valid_message(message)
    assert message["blocks"][0] == blocks[0]
    assert "do not clearly cover" in texts(message["blocks"])


def test_placeholder_help_and_error_messages_are_valid() -> None:
    for message in (ask_placeholder(), help_message(), error_message("Bad <input> & " + "x" * 5000)):
        assert_valid_message(message)
    assert "&lt;input&gt; &amp;" in texts(error_message("Bad <input> &")["blocks"])


# --- home ------------------------------------------------------------------------------------------


def _pending(count: int) -> list:
    return [(review(review_id=n + 1), initiative(name=LONG_NAME, ref=f"AI-{n:04d}")) for n in range(count)]


def test_home_with_60_pending_reviews_is_paged_under_100_blocks() -> None:
    pipeline = all_types()
    mine = [
        (initiative(name=LONG_NAME, ref=f"AI-{n:04d}"), readiness(pipeline, "pilot", {})) for n in range(30)
    ]
    recent = [
        (review(review_id=n + 100, status=ReviewStatus.APPROVED, closed_at=NOW), initiative())
        for n in range(45)
    ]
    first = home_view("U0ME", mine, _pending(60), recent, page=0, pipeline=pipeline)
    assert_valid_view(first)
    assert first["type"] == "home"
    nav = {
        b["text"]["text"]: b["value"]
        for b in buttons(first["blocks"])
        if b["action_id"] == ids.ACTION_HOME_PAGE
    }
    assert nav == {"Next": "1"}
    approve_values = [b["value"] for b in buttons(first["blocks"]) if b["action_id"] == ids.ACTION_APPROVE]
    assert approve_values == [str(n) for n in range(1, 11)]
    last = home_view("U0ME", mine, _pending(60), recent, page=5, page_size=10)
    assert_valid_view(last)
    assert {b["text"]["text"] for b in buttons(last["blocks"]) if b["action_id"] == ids.ACTION_HOME_PAGE} == {
        "Previous"
    }
    assert "Page 6 of 6" in texts(last["blocks"])


def test_a_middle_home_page_offers_previous_and_next_without_repeating_an_action_id_in_a_block() -> None:
    middle = home_view("U0ME", [], _pending(60), [], page=2)
    assert_valid_view(middle)
    for block in middle["blocks"]:
        if block["type"] == "actions":
            action_ids = [element["action_id"] for element in block["elements"]]
            assert len(action_ids) == len(set(action_ids)), block  # Slack refuses the view otherwise
    nav = {
        b["text"]["text"]: b["value"]
        for b in buttons(middle["blocks"])
        if b["action_id"] == ids.ACTION_HOME_PAGE
    }
    assert nav == {"Previous": "1", "Next": "3"}
    assert "Page 3 of 6" in texts(middle["blocks"])


def test_home_given_my_count_shows_the_true_count_and_the_page_it_was_given() -> None:
    last_page = [(initiative(ref=f"AI-{n:04d}"), None) for n in range(121, 131)]
    view = home_view("U0ME", last_page, [], [], page=12, my_count=130)
    assert_valid_view(view)
    shown = texts(view["blocks"])
    assert "*My initiatives* (130)" in shown and "Page 13 of 13" in shown
    assert "AI-0121" in shown and "AI-0130" in shown
    assert {b["text"]["text"] for b in buttons(view["blocks"])} == {"Previous"}


def test_home_with_an_oversized_page_size_still_fits() -> None:
    view = home_view("U0ME", [], _pending(60), [], page=0, page_size=500)
    assert_valid_view(view)


def test_home_for_a_new_user_says_what_to_do() -> None:
    view = home_view("U0ME", [], [], [])
    assert_valid_view(view)
    assert "/shepherd new" in texts(view["blocks"]) and not buttons(view["blocks"])


# --- text helpers ----------------------------------------------------------------------------------


def test_escape_neutralises_slack_markup() -> None:
    assert escape("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"


def test_truncate_adds_an_ellipsis_and_never_cuts_an_escape_in_half() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 3) == "abc"
    cut = truncate("x" * 8 + "&amp;yyyy", 11)
    assert cut == "x" * 8 + "…"


LINK = "<https://intranet.example.com/policies/finance/expenses|the expense and travel policy handbook>"
DATE = "<!date^1793610000^{date_short} {time}|2026-11-02 09:00 UTC>"


def test_truncate_never_cuts_a_link_or_a_date_in_half() -> None:
    assert truncate("See " + LINK + " first", 60) == "See…"
    assert truncate("Decided " + DATE + " by the sponsor", 30) == "Decided…"
    assert truncate(LINK, 30) == "…"  # a token longer than all that is kept: left out, not cut
    assert truncate("1 < 2 and 3 > 2, that is plain", 12, markup=False) == "1 < 2 and 3…"


def test_split_text_moves_a_link_that_straddles_the_cut_whole_into_the_next_piece() -> None:
    words = "word " * 40
    pieces = split_text(words + LINK + " more", 250)
    assert pieces == [words.strip(), LINK + " more"]
    # The link starts before half the piece and ends inside it: the piece ends after it.
    early = "See " + LINK + ", " + "word " * 40
    assert split_text(early, len("See " + LINK) + 1)[0] == "See " + LINK


def whole_markup(piece: str) -> bool:
    """No ``<…>`` token and no ``&amp;`` escape in ``piece`` is cut in two."""
    bare = re.sub(r"<[^<>]*>", "", re.sub(r"&(?:amp|lt|gt);", "", piece))
    return not any(character in bare for character in "<>&")


_WORD = st.text(alphabet="abcdefghij", min_size=1, max_size=12)
_TOKEN = st.one_of(
    _WORD.map(lambda user: f"<@U{user}>"),
    st.just(DATE),
    st.tuples(_WORD, st.lists(_WORD, min_size=1, max_size=6)).map(
        lambda link: f"<https://example.com/{link[0]}|{' '.join(link[1])}>"
    ),
    st.sampled_from(["&amp;", "&lt;", "&gt;", "R&amp;D"]),
)
_MRKDWN = st.lists(st.one_of(_WORD, _TOKEN), max_size=80).flatmap(
    lambda parts: st.lists(
        st.sampled_from([" ", "\n", "\n\n"]), min_size=len(parts), max_size=len(parts)
    ).map(lambda gaps: "".join(part + gap for part, gap in zip(parts, gaps, strict=True)))
)


@given(_MRKDWN, st.integers(min_value=112, max_value=400))
def test_split_text_keeps_every_token_whole_and_loses_nothing(text: str, limit: int) -> None:
    """Whatever the text, as long as no token is longer than a piece (the longest here is 112)."""
    pieces = split_text(text, limit)
    assert all(len(piece) <= limit and whole_markup(piece) for piece in pieces), pieces
    assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


@given(_MRKDWN, st.integers(min_value=2, max_value=400))
def test_truncate_keeps_every_token_whole(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    assert len(cut) <= limit and whole_markup(cut), cut
    assert text.startswith(cut.removesuffix("…").rstrip())


def test_plain_text_is_never_empty() -> None:
    assert plain("   ", 10)["text"] == "-"


def test_split_text_prefers_paragraphs_and_respects_the_limit() -> None:
    pieces = split_text(("a" * 1800 + "\n\n") * 5, 3000)
    assert all(len(p) <= 3000 for p in pieces) and all(set(p) == {"a"} for p in pieces)


def test_clamp_blocks_replaces_overflow_with_a_count() -> None:
    blocks = [{"type": "divider"}] * 120
    clamped = clamp_blocks(blocks, 100)
    assert len(clamped) == 100 and clamped[-1]["elements"][0]["text"] == "…and 21 more"
    assert clamp_blocks(blocks[:5], 100) == blocks[:5]


def test_saved_answer_that_no_longer_fits_is_explained_in_the_hint() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"data_class": "secret"})
    assert_valid_view(view)
    block = find_block(view["blocks"], "q:data_class")
    assert "initial_option" not in block["element"]
    assert "no longer fits ('secret' is not one of" in block["hint"]["text"]


def test_fallback_text_cannot_ping_the_channel_but_still_mentions_approvers() -> None:
    item = initiative(name="<!channel> urgent & important")
    card = initiative_card(all_types(), item, None, None)
    assert "<!channel>" not in card["text"] and "&lt;!channel&gt; urgent &amp; important" in card["text"]
    request = review_request(all_types(), item, review(), None, [RISK_1, RISK_1])
    assert "<!channel>" not in request["text"] and request["text"].endswith(f"<@{RISK_1}>")
    reply = ask_reply(Answer(text="Hey <!here>"), None, "k")
    assert reply["text"] == "Hey &lt;!here&gt;"


def test_small_decimals_are_prefilled_in_plain_notation() -> None:
    view = questionnaire_modal(all_types(), initiative(), "intake", {"accuracy": 0.00001})
    assert find_block(view["blocks"], "q:accuracy")["element"]["initial_value"] == "0.00001"


def test_a_bullet_list_of_the_first_items_counts_the_rest_it_was_not_given() -> None:
    assert bullet_list(["a", "b"], max_items=2, total=5) == "• a\n• b\n• and 3 more"
    assert bullet_list(["a", "b", "c"], max_items=2) == "• a\n• b\n• and 1 more"
    assert bullet_list(["a", "b"], max_items=2, total=2) == "• a\n• b"


# --- text past Slack's limits: cut or counted, never refused ---------------------------------------


def _long_titled(label_length: int) -> CompiledPipeline:
    """A pipeline whose pilot gate has a title of ``label_length`` characters (no cap exists)."""
    data = {
        "version": 1,
        "stages": ["poc", "pilot"],
        "roles": {"sponsor": {"label": "Business sponsor"}},
        "gates": [
            {
                "id": "pilot",
                "from": "poc",
                "to": "pilot",
                "label": "Pilot & rollout " * (label_length // 16),
                "questions": [{"id": "q", "label": "Q"}],
                "approvals": [{"role": "sponsor", "min": 1}],
            }
        ],
    }
    return parse_pipeline(json.dumps(data), "long-title.yaml")


def test_a_home_review_submitted_as_an_exception_keeps_its_warning_under_a_long_gate_title() -> None:
    pending = [(review(exception_reason="The vendor audit is late."), initiative(name=LONG_NAME))]
    view = home_view("U0ME", [], pending, [], page=0, pipeline=_long_titled(2900))
    assert_valid_view(view)
    assert "Submitted as an exception" in texts(view["blocks"])


def test_a_review_request_to_hundreds_of_approvers_mentions_those_that_fit_and_counts_the_rest() -> None:
    approvers = [f"U0A{n:06d}" for n in range(600)]
    message = review_request(all_types(), initiative(), review(), None, approvers)
    assert_valid_message(message)
    assert len(message["text"]) <= 3000 and "<@U0A000000>" in message["text"]
    shown = message["text"].count("<@U0A")
    assert 50 < shown < 600 and f"and {600 - shown} more" in message["text"]
    approvers_block = texts(message["blocks"][1:2])
    listed = approvers_block.count("<@U0A")
    assert 100 < listed < 600 and f"and {600 - listed} more" in approvers_block


def test_evidence_links_and_link_answers_are_never_cut_inside_the_link() -> None:
    url = "https://intranet.example.com/governance/" + "evidence/" * 45 + "dpia.pdf"  # 450 characters
    pipeline = all_types()
    links = [EvidenceLink("AI-0007", "intake", url, "The DPIA", "U0LINK", NOW)]
    answers = {"dpia": AnswerVersion("AI-0007", "intake", "dpia", url, "U0A", NOW)}
    # The links under the intake gate, the link answer among "other gates" of a pilot review.
    for gate_id in ("intake", "pilot"):
        view = evidence_modal(pipeline, initiative(), review(gate_id=gate_id), gate_id, answers, links)
        assert_valid_view(view)
        assert f"<{url}|The DPIA>" in texts(view["blocks"])
    assert f"<{url}>" in texts(view["blocks"])


def test_evidence_modal_of_long_answers_in_japanese_stays_under_250_kb_and_says_what_is_left_out() -> None:
    # Three bytes a character: 35 answers of 3,000 characters pass 250 kB long before 100 blocks.
    pipeline = huge_gate(150)
    answers = {
        q.id: AnswerVersion("AI-0007", "intake", q.id, "評価の根拠" * 600, "U0A", NOW)
        for q in pipeline.model.intake.questions[:35]
    }
    view = evidence_modal(pipeline, initiative(), review(gate_id="intake"), "intake", answers, [])
    assert_valid_view(view)
    assert len(view["blocks"]) < 60
    assert "…and " in texts(view["blocks"]) and " more" in texts(view["blocks"])
