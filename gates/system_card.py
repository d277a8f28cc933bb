"""A draft model / system card in Markdown, written from the answers a team already gave.

The sections follow the common model card templates (Mitchell et al., "Model Cards for Model
Reporting", and the Hugging Face model card): intended use and users, out-of-scope uses, data,
evaluation and metrics, limitations, risks and mitigations, human oversight, monitoring, owners.
Each field names the default pipeline's question it comes from; a pipeline without that question
simply leaves the field out, and an unanswered one says "Not answered yet" so the gaps are
visible to the approvers. A question its show_if hides with the answers given (the vendor, once
the team said it uses no external AI) says "Does not apply": its answer, if one was recorded
before the premise changed, counts for nothing, as in the questionnaire. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from gates.answers import AnswerValue, display
from gates.loader import CompiledPipeline
from gates.markdown import markdown_text
from gates.pipeline import Question, QuestionType
from gates.readiness import hidden_questions, typed_answers

NOT_ANSWERED = "Not answered yet"
DOES_NOT_APPLY = "Does not apply"
PRODUCTION_STAGE = "production"


@dataclass(frozen=True, slots=True)
class Field:
    label: str
    question_id: str


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    purpose: str
    fields: tuple[Field, ...]


def _fields(*pairs: tuple[str, str]) -> tuple[Field, ...]:
    return tuple(Field(label, qid) for label, qid in pairs)


SECTIONS: tuple[Section, ...] = (
    Section(
        "System details",
        "What the system is and what it is built from.",
        _fields(
            ("Business area", "business_area"),
            ("Uses generative AI", "generative_ai"),
            ("Relies on an external AI provider", "third_party_ai"),
            ("Provider(s) and model(s)", "third_party_vendor"),
            ("Model documentation", "model_card_link"),
            ("Solution design", "architecture_design_link"),
        ),
    ),
    Section(
        "Intended use",
        "The problem it solves and the outcome it is meant to bring.",
        _fields(
            ("Problem and who has it", "problem_statement"),
            ("Intended outcome", "target_outcome"),
            ("Scope", "pilot_scope"),
        ),
    ),
    Section(
        "Intended users",
        "Who uses it or sees its outputs.",
        _fields(
            ("Users", "pilot_users"),
            ("Number of pilot users", "pilot_user_count"),
            ("Customers or the public see its outputs", "customer_facing"),
            ("Users trained for full-scale use", "user_training"),
        ),
    ),
    Section(
        "Out-of-scope uses",
        "Uses it was not designed or assessed for; anything outside the stated scope is out of scope.",
        _fields(
            ("In and out of scope", "pilot_scope"),
            ("Makes or shapes decisions about individual people", "automated_decisions"),
            ("Regulated or high-impact domain", "regulated_domain"),
        ),
    ),
    Section(
        "Data",
        "What data it uses, on what basis, and how good it is.",
        _fields(
            ("Kinds of data", "data_sources"),
            ("Live data sources", "live_data_sources"),
            ("Personal data", "personal_data"),
            ("Sensitive personal data", "special_category_data"),
            ("Lawful basis", "lawful_basis"),
            ("Data quality", "data_quality"),
            ("Known data issues and their handling", "data_issues"),
            ("Data protection impact assessment", "dpia_link"),
            ("Final DPIA signed off by privacy", "dpia_signed_off"),
        ),
    ),
    Section(
        "Evaluation and metrics",
        "How success is measured and what the evaluations showed.",
        _fields(
            ("Primary business KPI", "primary_kpi"),
            ("Measured baseline", "kpi_baseline"),
            ("Target improvement", "target_improvement_pct"),
            ("Improvement measured in the pilot", "kpi_improvement_pct"),
            ("Proof-of-concept success metrics", "success_metrics"),
            ("Success metrics met", "success_metrics_met"),
            ("What the proof of concept showed", "poc_findings"),
            ("Proof-of-concept evaluation", "poc_evaluation_link"),
            ("Pilot exit criteria", "pilot_exit_criteria"),
            ("Pilot exit criteria met", "pilot_exit_criteria_met"),
            ("Pilot users who want to keep it", "pilot_satisfaction_pct"),
            ("Robustness tests run", "robustness_tests"),
        ),
    ),
    Section(
        "Limitations",
        "Where it falls short today.",
        _fields(
            ("Known data issues", "data_issues"),
            ("What the model documentation covers", "model_card_covers"),
            ("Open critical or high-severity defects", "open_critical_defects"),
        ),
    ),
    Section(
        "Risks and mitigations",
        "The risks assessed and the controls in place.",
        _fields(
            ("AI risk assessment", "risk_assessment_link"),
            ("Residual risk after controls", "residual_risk"),
            ("Ethics and impact assessment", "ethics_assessment_link"),
            ("AI vendor assessment", "vendor_assessment_link"),
            ("Safeguards for generative outputs", "genai_safeguards"),
            ("Security testing", "security_testing"),
            ("Rollout strategy", "rollout_strategy"),
            ("Switch-off and rollback", "rollback_plan"),
            ("Rollback rehearsed", "rollback_tested"),
        ),
    ),
    Section(
        "Human oversight",
        "How people stay in control of its outputs.",
        _fields(
            ("Oversight of outputs", "pilot_oversight"),
            ("Makes or shapes decisions about individual people", "automated_decisions"),
            ("People told they deal with AI", "ai_disclosure"),
        ),
    ),
    Section(
        "Monitoring",
        "What is watched in production and what happens when it drifts.",
        _fields(
            ("Signals monitored", "monitoring_signals"),
            ("Monitoring dashboard", "monitoring_dashboard_link"),
            ("Drift and quality thresholds and actions", "drift_thresholds"),
            ("Alerts channel", "alerts_channel"),
            ("Alerts tested end to end", "alerts_tested"),
            ("Keeping the model current", "retraining_plan"),
            ("Retraining interval (days)", "retraining_interval_days"),
            ("Review cadence (months)", "review_cadence_months"),
            ("Incident process", "incident_process_link"),
            ("When to retire it", "retirement_criteria"),
        ),
    ),
    Section(
        "Owners",
        "Who is accountable for it.",
        _fields(
            ("Business sponsor", "business_sponsor"),
            ("Initiative owner", "initiative_owner"),
            ("Pilot lead", "pilot_lead"),
            ("Operations owner", "operations_owner"),
            ("Operations team", "operations_team"),
            ("AI vendor contract owner", "vendor_contract_owner"),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class SystemCard:
    """A drafted card and its figures, each question counted once (some appear in two sections)."""

    markdown: str
    answered: int
    """Questions the card uses that apply and are answered."""
    applicable: int
    """Questions the card uses that apply (not hidden by other answers)."""

    @property
    def gaps(self) -> int:
        """Questions that apply and are not answered yet."""
        return self.applicable - self.answered


def is_production_gate(pipeline: CompiledPipeline, gate_id: str | None) -> bool:
    """True for the gate that leads into production (where the card is drafted)."""
    gate = pipeline.model.gate(gate_id) if gate_id else None
    return gate is not None and (gate.to == PRODUCTION_STAGE or gate.id == PRODUCTION_STAGE)


def card_questions(pipeline: CompiledPipeline) -> set[str]:
    """Question ids of this pipeline that the card uses."""
    asked = pipeline.model.all_questions()
    return {f.question_id for s in SECTIONS for f in s.fields if f.question_id in asked}


def card_people(pipeline: CompiledPipeline, answers: Mapping[str, AnswerValue | None]) -> set[str]:
    """The Slack user ids the card shows: answers to its person questions (owners, leads)."""
    asked = pipeline.model.all_questions()
    return {
        str(value)
        for qid in card_questions(pipeline)
        if asked[qid][1].type is QuestionType.USER and _present(value := answers.get(qid))
    }


def draft_system_card(
    pipeline: CompiledPipeline,
    *,
    ref: str,
    name: str,
    answers: Mapping[str, AnswerValue | None],
    stage: str | None = None,
    tier: str | None = None,
    generated_at: datetime | None = None,
    heading_level: int = 1,
    people: Mapping[str, str] | None = None,
) -> SystemCard:
    """The card as Markdown, with its figures. ``heading_level`` shifts the headings (2 to embed
    it under a ``#``). ``people`` names the persons the answers give by Slack user id; one it
    does not name is shown by id."""
    asked = pipeline.model.all_questions()
    top = "#" * max(1, heading_level)
    sub = top + "#"
    hidden = hidden_by(pipeline, answers)
    used = card_questions(pipeline) - hidden
    answered = sum(1 for qid in used if _present(answers.get(qid)))
    lines = [f"{top} System card (draft): {markdown_text(_inline(name))} ({ref})", ""]
    facts = [f"Stage: {stage}" if stage else None, f"Risk tier: {tier}" if tier else None]
    when = f" on {_iso(generated_at)}" if generated_at else ""
    lines += [
        f"Drafted by Shepherd{when} from the answers recorded for {ref}: {answered} of {len(used)} "
        "fields answered. Review and complete it before publishing; fields marked "
        f'"{NOT_ANSWERED}" are gaps to close, fields marked "{DOES_NOT_APPLY}" are left out by '
        "other answers.",
        "",
    ]
    shown_facts = [fact for fact in facts if fact]
    if shown_facts:
        lines += ["; ".join(shown_facts) + ".", ""]
    for section in SECTIONS:
        lines += [f"{sub} {section.title}", "", f"_{section.purpose}_", ""]
        present = [f for f in section.fields if f.question_id in asked]
        if not present:
            lines += ["Not covered by this pipeline's questions.", ""]
            continue
        for entry in present:
            if entry.question_id in hidden:
                lines.append(f"- **{entry.label}:** {DOES_NOT_APPLY}")
                continue
            question = asked[entry.question_id][1]
            lines += _field_lines(entry.label, question, answers.get(entry.question_id), people or {})
        lines.append("")
    return SystemCard("\n".join(lines).rstrip() + "\n", answered, len(used))


def hidden_by(pipeline: CompiledPipeline, answers: Mapping[str, AnswerValue | None]) -> frozenset[str]:
    """The questions a show_if hides with ``answers``, settled as the questionnaire settles them."""
    typed = typed_answers(pipeline, answers)
    return hidden_questions(pipeline, pipeline.questions, pipeline.visibility_rounds, typed)


def _field_lines(
    label: str, question: Question, value: AnswerValue | None, people: Mapping[str, str]
) -> list[str]:
    if not _present(value):
        return [f"- **{label}:** {NOT_ANSWERED}"]
    if question.type is QuestionType.USER:
        text = people.get(str(value)) or f"@{value}"
    else:
        text = display(question, value)
    # Answers are shown as typed: HTML, links or headings in them are escaped, not rendered.
    parts = [markdown_text(part.strip()) for part in text.strip().splitlines() if part.strip()]
    if len(parts) <= 1:
        return [f"- **{label}:** {parts[0] if parts else text}"]
    return [f"- **{label}:**", *(f"  {part}" for part in parts)]


def _present(value: AnswerValue | None) -> bool:
    return value is not None and value != "" and value != []


def _inline(value: object) -> str:
    return " ".join(str(value).split())


def _iso(at: datetime) -> str:
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat(timespec="seconds")
