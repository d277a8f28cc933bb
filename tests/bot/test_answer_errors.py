"""What a person is told inside a modal about an answer that does not fit: the reason first,
within the 150 characters Slack shows under a field, on the field it is about. The evidence
link of a questionnaire page has its own field, whatever the pipeline calls its questions. A
saved answer that the pipeline no longer accepts shows as an empty field that says so, and
saving it empty clears it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import ids
from gates import usecases
from gates.answers import coerce
from gates.errors import InvalidAnswer
from gates.ports import AnswerVersion
from tests.bot.scenario import Workspace, only_ref, workspace_of

OWNER = "U0OWNER01"
CHANNEL_PATTERN = "#?[a-z0-9][a-z0-9_-]{0,79}"
LONG_ANSWER = (
    "Alerts go to the on-call rota in PagerDuty and the team mailbox for now; a dedicated Slack "
    "channel will be created once the pilot team has been set up properly"
)
# A regex so long that its refusal of a short answer cannot fit the 150 characters Slack shows.
TEAM_PATTERN = (
    "("
    + "|".join(
        f"team-{word}"
        for word in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    )
    + ")"
)
QUESTIONS: list[dict[str, Any]] = [
    {"id": "alerts_channel", "label": "Slack channel for alerts", "validation": {"pattern": CHANNEL_PATTERN}},
    {
        "id": "review_channel",
        "label": "Slack channel for reviews",
        "validation": {"pattern": CHANNEL_PATTERN, "message": "a Slack channel, like #ops-alerts"},
    },
    {"id": "team", "label": "Team", "validation": {"pattern": TEAM_PATTERN}},
    {"id": "budget", "label": "Budget (k EUR)", "type": "number"},
    # A question may be called "link": the questionnaire's evidence link is not a question.
    {"id": "link", "label": "Link to the repository", "type": "url"},
    {"id": "hosting", "label": "Hosting region", "type": "choice", "options": ["eu", "us"]},
    {
        "id": "data_class",
        "label": "Data classification",
        "type": "choice",
        "options": ["public", "internal"],
        "required": True,
    },
]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on a one-gate pipeline whose intake asks ``QUESTIONS``, with one registered
    initiative (no answers yet)."""
    pipeline = tmp_path / "pipeline.yaml"
    gate = {
        "id": "intake",
        "from": "idea",
        "to": "poc",
        "questions": QUESTIONS,
        "approvals": [{"role": "sponsor"}],
    }
    definition = {"version": 1, "stages": ["idea", "poc"], "roles": {"sponsor": {}}, "gates": [gate]}
    pipeline.write_text(yaml.safe_dump(definition), encoding="utf-8")
    with workspace_of({OWNER: "olivia"}, tmp_path / "data", pipeline=pipeline) as ws:
        usecases.register(
            ws.services.pipeline,
            ws.services.uow(),
            name="P",
            owner_id=OWNER,
            answers={},
            actor_id=OWNER,
            now=ws.clock(),
        )
        ws.deliver()
        yield ws


def intake_errors(ws: Workspace, values: dict[str, str]) -> dict[str, str]:
    """The errors the intake modal shows for ``values`` (question id -> what was typed)."""
    view = ws.opened_view(lambda: ws.command(OWNER, "new"))
    typed = {ids.question_block_id(qid): value for qid, value in values.items()}
    body = ws.submit_view(OWNER, view, {ids.NAME_BLOCK: "Forecast", **typed}).json()
    assert body["response_action"] == "errors"
    return {ids.question_id_of(block) or block: message for block, message in body["errors"].items()}


def page_errors(ws: Workspace, values: dict[str, str], link: str | None = None) -> dict[str, str]:
    """The errors the questionnaire page shows for ``values`` and the evidence ``link``."""
    card = ws.messages_in(ws.registry)[0]
    view = ws.opened_view(lambda: ws.click(OWNER, card, ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    state = {ids.question_block_id(qid): value for qid, value in values.items()}
    if link is not None:
        state[ids.LINK_URL_BLOCK] = link
    response = ws.submit_view(OWNER, view, state)
    body = response.json() if response.text.strip() else {}
    return dict(body.get("errors", {}))


def recorded(ws: Workspace) -> tuple[dict[str, Any], list[str]]:
    with ws.services.read_uow() as uow:
        ref = only_ref(ws)
        answers = {qid: version.value for qid, version in uow.answers.current(ref).items()}
        return answers, [link.url for link in uow.answers.links(ref)]


def test_a_long_answer_refused_by_a_pattern_is_told_why(workspace: Workspace) -> None:
    message = intake_errors(workspace, {"alerts_channel": LONG_ANSWER})["alerts_channel"]
    assert message.startswith(f"does not have the expected format ({CHANNEL_PATTERN}), got 'Alerts go")
    assert len(message) <= 150


def test_a_pattern_refusal_uses_the_pipelines_words_when_it_has_them(workspace: Workspace) -> None:
    message = intake_errors(workspace, {"review_channel": LONG_ANSWER})["review_channel"]
    assert message.startswith("expected a Slack channel, like #ops-alerts, got 'Alerts go")
    assert CHANNEL_PATTERN not in message


def test_an_error_too_long_for_slack_is_cut_at_a_word_with_an_ellipsis(workspace: Workspace) -> None:
    full = _refusal(workspace, "team", "the platform team")
    assert len(full) > 150
    message = intake_errors(workspace, {"team": "the platform team"})["team"]
    assert len(message) <= 150
    assert message.endswith("…")
    kept = message.removesuffix("…")
    assert full.startswith(kept) and full[len(kept)] in " |", f"cut inside a word: {message!r}"


def test_a_question_called_link_has_its_errors_on_its_own_field(workspace: Workspace) -> None:
    errors = page_errors(
        workspace, {"link": "ftp://repo.example.com/x"}, link="https://docs.example.com/design"
    )
    assert list(errors) == [ids.question_block_id("link")]
    assert "https://" in errors[ids.question_block_id("link")]
    assert recorded(workspace) == ({}, [])


def test_a_bad_evidence_link_is_shown_with_every_other_problem_of_the_page(workspace: Workspace) -> None:
    errors = page_errors(
        workspace,
        {"budget": "a lot", "link": "ftp://repo.example.com/x", "team": "team-alpha"},
        link="not a link",
    )
    assert set(errors) == {ids.question_block_id("budget"), ids.question_block_id("link"), ids.LINK_URL_BLOCK}
    assert "expected a number" in errors[ids.question_block_id("budget")]
    assert "'not a link'" in errors[ids.LINK_URL_BLOCK]
    assert recorded(workspace) == ({}, [])


def test_a_bad_evidence_link_alone_is_shown_on_the_link_field(workspace: Workspace) -> None:
    errors = page_errors(workspace, {"link": "https://git.example.com/p"}, link="not a link")
    assert list(errors) == [ids.LINK_URL_BLOCK]
    assert recorded(workspace) == ({}, [])


def test_a_page_with_a_question_called_link_and_an_evidence_link_is_recorded(workspace: Workspace) -> None:
    errors = page_errors(
        workspace, {"link": "https://git.example.com/p"}, link="https://docs.example.com/design"
    )
    assert errors == {}
    assert recorded(workspace) == ({"link": "https://git.example.com/p"}, ["https://docs.example.com/design"])


def saved_before_the_pipeline_changed(ws: Workspace, answers: dict[str, Any]) -> None:
    """Store ``answers`` as they were given before the pipeline stopped accepting them (an
    option removed since, say): written straight to storage, since no form takes them now."""
    ref = only_ref(ws)
    with ws.services.uow() as uow:
        for qid, value in answers.items():
            uow.answers.append(AnswerVersion(ref, "intake", qid, value, OWNER, ws.clock()))
        uow.commit()


def test_an_optional_answer_that_no_longer_fits_is_cleared_by_saving_its_field_empty(
    workspace: Workspace,
) -> None:
    """The field shows empty and its hint says saving leaves the question unanswered; so it
    does, instead of keeping the old answer, which would block the gate until someone made up
    an answer to an optional question."""
    ws = workspace
    saved_before_the_pipeline_changed(ws, {"hosting": "apac", "data_class": "public"})
    card = ws.messages_in(ws.registry)[0]
    view = ws.opened_view(lambda: ws.click(OWNER, card, ws.registry, ids.ACTION_OPEN_QUESTIONNAIRE))
    block = next(b for b in view["blocks"] if b.get("block_id") == ids.question_block_id("hosting"))
    assert "initial_option" not in block["element"]
    assert "no longer fits ('apac' is not one of" in block["hint"]["text"]
    assert "saving leaves this unanswered" in block["hint"]["text"]

    response = ws.submit_view(OWNER, view, {})
    assert response.status == 200 and '"errors"' not in response.text, response.text

    assert recorded(ws)[0] == {"hosting": None, "data_class": "public"}
    with ws.services.read_uow() as uow:
        history = [
            (v.value, v.author_id) for v in uow.answers.history(only_ref(ws)) if v.question_id == "hosting"
        ]
    assert history == [("apac", OWNER), (None, OWNER)]  # who cleared it is on the record
    report = usecases.check_readiness(ws.services.pipeline, ws.services.read_uow(), only_ref(ws))
    assert report.invalid == () and report.missing == ()


def test_a_required_answer_that_no_longer_fits_saved_empty_is_then_simply_unanswered(
    workspace: Workspace,
) -> None:
    ws = workspace
    saved_before_the_pipeline_changed(ws, {"data_class": "secret"})
    before = usecases.check_readiness(ws.services.pipeline, ws.services.read_uow(), only_ref(ws))
    assert [error.question_id for error in before.invalid] == ["data_class"]

    assert page_errors(ws, {}) == {}

    assert recorded(ws)[0] == {"data_class": None}
    after = usecases.check_readiness(ws.services.pipeline, ws.services.read_uow(), only_ref(ws))
    assert after.invalid == ()
    assert [question.id for question in after.missing] == ["data_class"]


def _refusal(ws: Workspace, question_id: str, raw: str) -> str:
    """What the domain says about ``raw`` as an answer to ``question_id``, uncut."""
    with pytest.raises(InvalidAnswer) as caught:
        coerce(ws.services.pipeline.questions[question_id], raw)
    return caught.value.reason
