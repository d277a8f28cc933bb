"""The evidence pack (`shepherd export`), built from a real SQLite database: what an auditor reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt
from sqlalchemy import insert, update

from bot.bootstrap import Services, bootstrap
from bot.evidence_pack import evidence_json, evidence_markdown
from bot.settings import Settings
from gates import usecases
from gates.lifecycle import DecisionKind
from storage.tables import answer_versions, decisions

REPO_ROOT = Path(__file__).resolve().parents[2]
INTAKE: dict[str, Any] = yaml.safe_load(
    (REPO_ROOT / "examples" / "answers" / "intake-low-risk.yaml").read_text(encoding="utf-8")
)
OWNER, SPONSOR = "U03PLANLEAD", "U02SUPPLYDIR"
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Shepherd's services on an empty SQLite database, with SPONSOR holding the sponsor role."""
    built = bootstrap(Settings(data_dir=tmp_path / "data", embeddings="none"))
    usecases.set_role_holders(built.pipeline, built.uow(), "sponsor", [SPONSOR], "test", T0)
    yield built
    built.database.dispose()


def registered(services: Services, answers: dict[str, Any] | None = None) -> str:
    return usecases.register(
        services.pipeline,
        services.uow(),
        name="Forecast",
        owner_id=OWNER,
        sponsor_id=SPONSOR,
        answers=answers or INTAKE,
        actor_id=OWNER,
        now=T0,
    ).ref


def submitted(services: Services, ref: str) -> int:
    review = usecases.submit(services.pipeline, services.uow(), ref, OWNER, T0 + timedelta(hours=1))
    assert review.id is not None
    return review.id


def approved(services: Services, ref: str) -> int:
    review_id = submitted(services, ref)
    outcome = usecases.decide(
        services.pipeline,
        services.uow(),
        review_id,
        SPONSOR,
        DecisionKind.APPROVE,
        "ok",
        T0 + timedelta(days=1),
    )
    assert outcome.advanced
    return review_id


def pack(services: Services, ref: str, gate: str | None = None) -> tuple[dict[str, Any], str]:
    view = usecases.show(services.pipeline, services.read_uow(), ref)
    return evidence_json(services.pipeline, view, gate), evidence_markdown(services.pipeline, view, gate)


def test_retiring_under_review_shows_the_review_withdrawn_on_the_timeline(services: Services) -> None:
    ref = registered(services)
    review_id = submitted(services, ref)
    usecases.retire(services.uow(), ref, OWNER, "budget cut", T0 + timedelta(days=2))

    data, text = pack(services, ref)
    assert data["reviews"][0]["status"] == "withdrawn"
    assert [(e["actor"], e["action"], e["detail"]) for e in data["timeline"]][-2:] == [
        (OWNER, "review.withdrawn", {"review": review_id, "gate": "intake"}),
        (OWNER, "initiative.retired", {"reason": "budget cut"}),
    ]
    at = "2026-09-03T09:00:00+00:00"
    assert f"| {at} | {OWNER} | review.withdrawn | gate: intake; review: {review_id} |" in text
    assert f"| {at} | {OWNER} | initiative.retired | reason: budget cut |" in text


EVIL_KPI = (
    'Stock-out rate <img src=x onerror="alert(document.cookie)"> '
    "[DPIA signed by the DPO](https://evil.example/phish)"
)
EVIL_REASON = "**Approved by the board** <script>alert(1)</script> see [here](https://evil.example/x)"


class Rendered(HTMLParser):
    """The tags and the text of rendered HTML."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.texts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def rendered(markdown: str) -> Rendered:
    """The pack as a reader sees it: CommonMark with GitHub's tables and strikethrough."""
    return Rendered(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown))


def test_html_and_links_typed_in_answers_and_reasons_render_as_the_literal_text(services: Services) -> None:
    ref = registered(services, {**INTAKE, "primary_kpi": EVIL_KPI})
    review_id = submitted(services, ref)
    usecases.decide(
        services.pipeline, services.uow(), review_id, SPONSOR, DecisionKind.REQUEST_CHANGES, EVIL_REASON,
        T0 + timedelta(days=1),
    )  # fmt: skip
    changed = "# Heading? - no: `code` _and_ ~~struck~~ | pipe & <b>bold</b>"
    usecases.answer(
        services.pipeline,
        services.uow(),
        ref,
        "intake",
        {"primary_kpi": changed},
        OWNER,
        T0 + timedelta(days=2),
    )
    usecases.hold(
        services.uow(),
        ref,
        OWNER,
        "waiting <em>on</em> [legal](https://evil.example/l)",
        T0 + timedelta(days=3),
    )

    data, text = pack(services, ref)
    kpi = next(entry for entry in data["answers"] if entry["question"] == "primary_kpi")
    assert [v["value"] for v in kpi["history"]] == [EVIL_KPI, changed]  # the JSON keeps what was typed
    assert "<img" not in text and "<script" not in text and "<b>" not in text and "<em>" not in text
    assert not re.search(r"(?<!\\)\]\(", text)  # no link: every ] is escaped
    page = rendered(text)
    assert page.tags.isdisjoint({"img", "script", "a", "b", "del", "s"}), page.tags  # em: our own italics
    shown = "".join(page.texts)
    # The answer history, the system card, the decision table and the status: each the literal text.
    assert shown.count(EVIL_KPI) == 2  # answer history, answers as submitted for review 1
    assert shown.count(changed) == 5  # answers table, history, as submitted (now:), system card, timeline
    assert EVIL_REASON in shown
    assert "on hold (waiting <em>on</em> [legal](https://evil.example/l))" in shown
    assert (
        "initiative.held\nreason: waiting <em>on</em> [legal](https://evil.example/l)\n" in shown
    )  # timeline


def entry(review: dict[str, Any], question: str) -> dict[str, Any]:
    return next(e for e in review["answers_as_submitted"] if e["question"] == question)


def test_a_review_sent_back_shows_the_answers_it_was_decided_on_and_marks_what_changed_since(
    services: Services,
) -> None:
    ref = registered(services)
    # A pilot answer given early: the intake review's evidence hash covers it too.
    usecases.answer(
        services.pipeline, services.uow(), ref, "pilot", {"poc_findings": "Early look: promising"}, OWNER,
        T0 + timedelta(minutes=30),
    )  # fmt: skip
    review_id = submitted(services, ref)
    usecases.decide(
        services.pipeline, services.uow(), review_id, SPONSOR, DecisionKind.REQUEST_CHANGES,
        "Say which KPI and whether personal data is involved", T0 + timedelta(days=1),
    )  # fmt: skip
    # The team does what was asked (an approved gate's answers no longer change): edits answers,
    # answers a question the review was decided without, and rewrites the pilot answer.
    later = T0 + timedelta(days=10)
    usecases.answer(
        services.pipeline, services.uow(), ref, "intake",
        {"personal_data": "yes", "special_category_data": "no", "primary_kpi": "Fill rate"}, OWNER, later,
    )  # fmt: skip
    usecases.answer(
        services.pipeline, services.uow(), ref, "pilot", {"poc_findings": "Hypothesis H1 held"}, OWNER, later
    )

    data, text = pack(services, ref)
    review = data["reviews"][0]
    assert review["id"] == review_id and review["status"] == "changes_requested"
    assert entry(review, "personal_data") | {"display": None} == {
        "gate": "intake",
        "question": "personal_data",
        "label": "Will the system process personal data?",
        "value": "no",
        "display": None,
        "author": OWNER,
        "answered_at": "2026-09-01T09:00:00+00:00",
        "applies": True,
        "since": "changed",
        "current": {"value": "yes", "display": "yes"},
    }
    assert entry(review, "problem_statement")["since"] == "unchanged"
    assert entry(review, "problem_statement")["current"] is None
    assert entry(review, "special_category_data")["since"] == "answered after submission"
    assert entry(review, "special_category_data")["value"] is None
    pilot = entry(review, "poc_findings")
    assert (pilot["gate"], pilot["value"], pilot["since"]) == ("pilot", "Early look: promising", "changed")
    # The answers as submitted are exactly what the evidence hash covers.
    decided_on = {e["question"]: e["value"] for e in review["answers_as_submitted"] if e["value"] is not None}
    assert decided_on == {
        qid: version.value
        for qid, version in usecases.evidence_as_submitted(services.read_uow(), review_id).answers.items()
    }
    # The gate's current answers are unchanged in place: the table still says what they are today.
    assert next(a for a in data["answers"] if a["question"] == "personal_data")["value"] == "yes"

    intake = text[text.index("## Intake gate (intake)") : text.index("## Pilot gate (pilot)")]
    assert "| Will the system process personal data? (`personal_data`) | yes |" in intake  # current
    section = intake[intake.index("##### Answers as submitted for review 1") :]
    assert f"its evidence hash `{review['evidence_hash']}` covers them" in section
    assert "| Question | As submitted | Answered by | When | Since then |" in section
    assert (
        f"| Will the system process personal data? (`personal_data`) | no | {OWNER} "
        "| 2026-09-01T09:00:00+00:00 | **changed**, now: yes |"
    ) in section
    assert (
        f"| Primary business KPI (`primary_kpi`) | {INTAKE['primary_kpi']} | {OWNER} "
        "| 2026-09-01T09:00:00+00:00 | **changed**, now: Fill rate |"
    ) in section
    assert (
        f"| Is the current value of the primary KPI measured? (`kpi_baseline_known`) | yes | {OWNER} "
        in section
    )
    assert "| 2026-09-01T09:00:00+00:00 | unchanged |" in section
    assert "(`special_category_data`) | - | - | - | **answered after submission**, now: no |" in section
    assert "Its hash also covers 1 answer(s) to other gates, as submitted: 1 changed since:" in section
    assert (
        "- Pilot gate, What did the PoC show? (`poc_findings`): as submitted Early look: promising; "
        "**changed**, now: Hypothesis H1 held"
    ) in section


def test_an_open_review_has_no_answers_as_submitted_beside_the_current_ones(services: Services) -> None:
    ref = registered(services)
    submitted(services, ref)
    data, text = pack(services, ref)
    assert data["reviews"][0]["status"] == "open"
    assert data["reviews"][0]["answers_as_submitted"] is None  # its gate is frozen while it is open
    assert data["reviews"][0]["evidence_hash_holds"] is None  # so none are shown to vouch for
    assert "Answers as submitted" not in text


def test_a_review_decided_on_todays_answers_says_none_changed(services: Services) -> None:
    ref = registered(services)
    approved(services, ref)
    data, text = pack(services, ref, "intake")
    assert {e["since"] for e in data["reviews"][0]["answers_as_submitted"]} == {"unchanged"}
    assert "##### Answers as submitted for review 1" in text and "**changed**" not in text


def test_the_current_answer_is_the_one_shepherd_holds_as_current_when_saves_commit_out_of_time_order(
    services: Services,
) -> None:
    """Two saves of one question committed in the opposite order to their timestamps (two
    processes saving at the same moment, or replicas whose clocks differ a little): the later
    commit is the current answer for readiness, Slack and `initiatives show`, so for the pack too."""
    ref = registered(services)
    click, later_click = T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=1)
    usecases.answer(
        services.pipeline, services.uow(), ref, "intake", {"primary_kpi": "KPI B"}, SPONSOR, later_click
    )
    # OWNER's save, stamped a moment earlier, commits second: it is the newest version.
    usecases.answer(services.pipeline, services.uow(), ref, "intake", {"primary_kpi": "KPI A"}, OWNER, click)
    current = usecases.show(services.pipeline, services.read_uow(), ref).answers["primary_kpi"]
    assert (current.value, current.author_id) == ("KPI A", OWNER)

    data, text = pack(services, ref)
    kpi = next(entry for entry in data["answers"] if entry["question"] == "primary_kpi")
    assert kpi["value"] == "KPI A"
    assert [(v["value"], v["author"]) for v in kpi["history"]] == [
        (INTAKE["primary_kpi"], OWNER),
        ("KPI B", SPONSOR),
        ("KPI A", OWNER),
    ]
    assert f"| Primary business KPI (`primary_kpi`) | KPI A | {OWNER} | 2026-09-01T10:00:00+00:00 |" in text


def test_answers_and_a_decision_changed_in_the_database_are_flagged_not_vouched_for(
    services: Services,
) -> None:
    """Someone with write access to the database turns a rejection into an approval and changes
    an answer the review was decided on: the pack shows what the tables hold, and says plainly
    that neither agrees with the record, instead of "its evidence hash covers them"."""
    ref = registered(services)
    review_id = submitted(services, ref)
    usecases.decide(
        services.pipeline, services.uow(), review_id, SPONSOR, DecisionKind.REJECT, "No baseline",
        T0 + timedelta(days=1),
    )  # fmt: skip
    data, text = pack(services, ref)
    assert data["reviews"][0]["evidence_hash_holds"] is True
    assert data["reviews"][0]["decisions"][0]["audit"] == {"entry": True, "differs": {}}
    assert "covers them" in text and "Warning" not in text

    with services.database.engine.begin() as connection:
        connection.execute(
            update(answer_versions)
            .where(answer_versions.c.question_id == "primary_kpi")
            .values(value="Edited")
        )
        connection.execute(update(decisions).values(kind="approve", reason="Looks good"))

    data, text = pack(services, ref)
    review = data["reviews"][0]
    assert entry(review, "primary_kpi")["value"] == "Edited"  # what the tables hold, shown as such ...
    assert review["evidence_hash_holds"] is False  # ... and not vouched for
    decision = review["decisions"][0]
    assert (decision["decision"], decision["reason"]) == ("approve", "Looks good")
    assert decision["audit"] == {"entry": True, "differs": {"decision": "reject", "reason": "No baseline"}}
    assert "covers them" not in text
    assert f"**They do not match its evidence hash `{review['evidence_hash']}`**" in text
    assert "- **Warning: its answers as submitted (below) and the links of then do not give this" in text
    assert (
        f"**Warning:** the decision of {SPONSOR} does not match its audit entry, which records decision "
        'reject, reason "No baseline": it was changed in the database.'
    ) in text


def test_a_decision_added_in_the_database_is_flagged_as_without_an_audit_entry(services: Services) -> None:
    ref = registered(services)
    review_id = submitted(services, ref)
    usecases.withdraw(services.uow(), ref, OWNER, T0 + timedelta(days=1))
    with services.database.engine.begin() as connection:
        connection.execute(
            insert(decisions).values(
                review_id=review_id, approver_id="U0CEO", kind="approve", role="sponsor",
                decided_at=T0 + timedelta(hours=2),
            )
        )  # fmt: skip
    data, text = pack(services, ref)
    assert data["reviews"][0]["decisions"][0]["audit"] == {"entry": False, "differs": {}}
    assert (
        "**Warning:** the decision of U0CEO has no audit entry: it was added in the database, "
        "not through Shepherd."
    ) in text


def test_each_approval_shows_the_role_it_counted_for_once_the_review_is_decided(services: Services) -> None:
    """A person holding two roles is counted for one of them, and moved to the other when a
    later approver can only fill the first (``gates.matching``): the pack says the role each
    approval counted for in the end, not the one it would have filled when it was given."""
    dual = "U05BOTHROLES"
    usecases.set_role_holders(services.pipeline, services.uow(), "sponsor", [SPONSOR, dual], "test", T0)
    usecases.set_role_holders(services.pipeline, services.uow(), "risk", [dual], "test", T0)
    ref = registered(services, {**INTAKE, "regulated_domain": "yes"})  # the high tier: sponsor and risk
    review_id = submitted(services, ref)
    for n, approver in enumerate((dual, SPONSOR), start=1):
        usecases.decide(
            services.pipeline, services.uow(), review_id, approver, DecisionKind.APPROVE, None,
            T0 + timedelta(days=n),
        )  # fmt: skip

    data, text = pack(services, ref)
    review = data["reviews"][0]
    assert (review["status"], review["tier"]) == ("approved", "high")
    assert [(r["role"], r["min"]) for r in review["requirements"]] == [("sponsor", 1), ("risk", 1)]
    # Each as given (and as its audit entry records it), and as it counted in the end.
    assert [(d["approver"], d["role"], d["counted_for"]) for d in review["decisions"]] == [
        (dual, "sponsor", "risk"),
        (SPONSOR, "sponsor", "sponsor"),
    ]
    assert all(d["audit"] == {"entry": True, "differs": {}} for d in review["decisions"])
    assert f"| {dual} | risk (first counted as sponsor) | approve |" in text
    assert f"| {SPONSOR} | sponsor | approve |" in text


def test_an_answer_other_answers_hide_is_marked_as_not_applying_where_the_pack_lists_it(
    services: Services,
) -> None:
    """The team named a vendor, then said it uses no external AI: the vendor's question is no
    longer asked and its answer, still on record, counts for nothing (as the system card says)."""
    ref = registered(services, {**INTAKE, "third_party_ai": "yes", "third_party_vendor": "Acme LLM"})
    usecases.answer(
        services.pipeline, services.uow(), ref, "intake", {"third_party_ai": "no"}, OWNER,
        T0 + timedelta(minutes=30),
    )  # fmt: skip
    approved(services, ref)

    data, text = pack(services, ref)
    vendor = next(a for a in data["answers"] if a["question"] == "third_party_vendor")
    assert (vendor["value"], vendor["applies"]) == ("Acme LLM", False)
    assert next(a for a in data["answers"] if a["question"] == "third_party_ai")["applies"] is True
    as_submitted = entry(data["reviews"][0], "third_party_vendor")
    assert (as_submitted["value"], as_submitted["applies"]) == ("Acme LLM", False)
    hidden = "Acme LLM (does not apply with the other answers: it counts for nothing)"
    assert f"| Which provider(s) and model(s)? (`third_party_vendor`) | {hidden} | {OWNER} |" in text
    section = text[text.index("##### Answers as submitted") :]
    assert f"| Which provider(s) and model(s)? (`third_party_vendor`) | {hidden} | {OWNER} |" in section
