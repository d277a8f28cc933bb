"""Readiness of an initiative for a gate: computed from the answers every time, never stored.

``readiness()`` answers the question teams ask most ("what's needed for the next gate?"):
which required questions are still open, which answers do not fit, which criteria are met,
unmet or cannot be judged yet (and which answer they wait for), the risk tier, and which
approvals the gate will need and who can give them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gates.answers import AnswerValue, coerce, for_rules
from gates.conditions import Condition, ConditionError, MissingAnswer, make_context, set_tier
from gates.errors import InvalidAnswer, UnknownGate
from gates.loader import CompiledPipeline
from gates.matching import unmet
from gates.pipeline import Gate, Question, RiskRule


class CriterionStatus(StrEnum):
    MET = "met"
    UNMET = "unmet"
    UNKNOWN = "cannot be evaluated"


@dataclass(frozen=True, slots=True)
class CriterionResult:
    id: str
    explain: str
    blocking: bool
    status: CriterionStatus
    waiting_for: tuple[str, ...] = ()
    error: str | None = None
    policy_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ApprovalNeed:
    """``min`` approvals from holders of ``role``; ``holders`` excludes the initiative's owner."""

    role: str
    label: str
    min: int
    holders: tuple[str, ...]
    usergroup: str | None = None
    because: str | None = None
    shared_short: bool = False
    """Enough people hold this role, but not enough distinct people for it and the gate's other
    roles at once (each person's approval counts for one role only)."""

    @property
    def short_of_holders(self) -> bool:
        return (len(self.holders) < self.min or self.shared_short) and self.usergroup is None


@dataclass(frozen=True, slots=True)
class Readiness:
    """Everything that stands between an initiative and a gate decision."""

    gate_id: str
    gate_title: str
    missing: tuple[Question, ...]
    invalid: tuple[InvalidAnswer, ...]
    criteria: tuple[CriterionResult, ...]
    tier: str | None
    tier_waiting_for: tuple[str, ...]
    approvals: tuple[ApprovalNeed, ...]
    visible_questions: tuple[Question, ...]
    answered: int
    answers: Mapping[str, AnswerValue] = field(repr=False)
    """Every answer that fits its question, those to hidden questions included."""
    counted: Mapping[str, AnswerValue] = field(repr=False)
    """The answers the rules saw: ``answers`` without those to questions hidden by a show_if."""
    tier_error: str | None = None
    """Why a risk-tier rule could not be judged with these answers (the tier is then unknown)."""

    @property
    def tier_unknown(self) -> bool:
        """The tier waits for an answer, or a rule for it fails: no exception can waive that."""
        return bool(self.tier_waiting_for or self.tier_error)

    @property
    def blocking_unmet(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.blocking and c.status is not CriterionStatus.MET)

    @property
    def advisory_unmet(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if not c.blocking and c.status is not CriterionStatus.MET)

    @property
    def ready(self) -> bool:
        return not self.blockers

    @property
    def blockers(self) -> list[str]:
        """Why the gate cannot be submitted, one sentence each; empty when ready."""
        reasons = [f"'{q.label}' is not answered" for q in self.missing]
        reasons += [str(error) for error in self.invalid]
        for criterion in self.blocking_unmet:
            if criterion.status is CriterionStatus.UNKNOWN and criterion.waiting_for:
                reasons.append(f"{criterion.explain} (waiting for: {', '.join(criterion.waiting_for)})")
            else:
                reasons.append(criterion.explain)
        if self.tier_waiting_for:
            reasons.append(
                f"the risk tier cannot be set until {', '.join(self.tier_waiting_for)} is answered"
            )
        if self.tier_error:
            reasons.append(self.tier_error)
        for need in self.approvals:
            if need.short_of_holders and len(need.holders) >= need.min:
                continue  # shared holders: one sentence for all the roles below
            if need.short_of_holders:
                reasons.append(
                    f"the {need.label} role needs {need.min} approver(s) but "
                    f"{len(need.holders)} eligible person(s) hold it "
                    "(the owner and whoever submits cannot approve)"
                )
        shared = [n for n in self.approvals if n.short_of_holders and len(n.holders) >= n.min]
        if shared:
            involved = [n for n in self.approvals if n.usergroup is None]
            wanted = ", ".join(f"{n.min} {n.label}" for n in involved)
            people = len({holder for n in involved for holder in n.holders})
            reasons.append(
                f"the {', '.join(n.label for n in shared)} role(s) cannot all be covered: the gate "
                f"needs {wanted} approval(s) from different people, and the {people} eligible "
                "person(s) holding these roles cannot give them all "
                "(each person's approval counts for one role; the owner and whoever submits "
                "cannot approve)"
            )
        return reasons


def readiness(
    pipeline: CompiledPipeline,
    gate_id: str,
    answers: Mapping[str, Any],
    role_holders: Mapping[str, Sequence[str]] | None = None,
    owner_id: str | None = None,
    *,
    submitter_id: str | None = None,
) -> Readiness:
    """Compute readiness for ``gate_id`` from the initiative's current answers.

    Args:
        pipeline: the compiled pipeline.
        gate_id: the gate to check.
        answers: question id -> answer, for every gate (rules may read earlier gates' answers).
            Raw values are coerced here; an answer that does not fit is reported, not raised.
        role_holders: role -> Slack user ids currently holding it (from storage and Slack).
        owner_id: the initiative's owner, who can never approve their own gate.
        submitter_id: who is submitting it for review, if anyone: they cannot approve it
            either, so a gate whose only holder of a role is its submitter is not ready.

    Raises:
        UnknownGate: the pipeline has no such gate.
    """
    gate = pipeline.model.gate(gate_id)
    if gate is None:
        raise UnknownGate(gate_id)
    typed, invalid = _coerce_all(pipeline.questions, answers)
    context, hidden, counted = _rules_context(pipeline, typed)

    invalid_ids = {error.question_id for error in invalid}
    visible = tuple(q for q in gate.questions if q.id not in hidden)
    missing = tuple(
        q
        for q in visible
        if q.id not in typed
        and q.id not in invalid_ids
        and (
            q.required
            or (
                q.required_if is not None
                and _applies(pipeline, q.required_if, context, default=False, on_error=True)
            )
        )
    )
    tier_rules = pipeline.tier_rules(gate)
    tier, tier_waiting, tier_error = _risk_tier(pipeline, tier_rules, context)
    context = set_tier(context, tier)
    criteria = tuple(_judge(pipeline, criterion, context) for criterion in gate.criteria)
    approvals = _approvals(
        pipeline,
        gate,
        context,
        role_holders or {},
        {owner_id, submitter_id} - {None},
        tier_unknown=bool(tier_rules) and tier is None,
    )
    # An answer to a hidden question that no longer fits cannot be corrected in the form (the
    # question is not in it), and does not count anyway.
    visible_ids = {q.id for q in visible}
    gate_invalid = tuple(error for error in invalid if error.question_id in visible_ids)
    return Readiness(
        gate_id=gate.id,
        gate_title=gate.title,
        missing=missing,
        invalid=gate_invalid,
        criteria=criteria,
        tier=tier,
        tier_waiting_for=tier_waiting,
        tier_error=tier_error,
        approvals=approvals,
        visible_questions=visible,
        answered=sum(1 for q in visible if q.id in typed),
        answers=typed,
        counted=counted,
    )


def _rules_context(
    pipeline: CompiledPipeline, typed: Mapping[str, AnswerValue]
) -> tuple[Any, frozenset[str], dict[str, AnswerValue]]:
    """The CEL context every rule is judged with, the questions hidden with these answers, and
    the answers that count (those of questions shown).

    A hidden question's answer stays on record but counts for nothing: rules see it exactly as
    an unanswered question, absent from ``answers``. Otherwise an answer given before its
    premise changed (a vendor's location, after the team said there is no vendor) would keep
    the questions and criteria that depend on it alive. Visibility is settled round by round
    (``CompiledPipeline.visibility_rounds``), dropping each round's hidden answers before the
    next round reads them, so a chain of show_ifs resolves however its questions are ordered.
    """
    questions = pipeline.questions
    # Converting answers for CEL is the slow part: the show_ifs get a context of only the
    # answers they read; the other rules get theirs once, when the answers that count are known.
    hidden = hidden_questions(
        pipeline, questions, pipeline.visibility_rounds, _only(typed, pipeline.show_if_inputs)
    )
    counted = {qid: value for qid, value in typed.items() if qid not in hidden}
    return (
        make_context(for_rules(questions, _only(counted, pipeline.rule_inputs))),
        hidden,
        counted,
    )


def hidden_questions(
    pipeline: CompiledPipeline,
    questions: Mapping[str, Question],
    rounds: Sequence[Sequence[Question]],
    typed: Mapping[str, AnswerValue],
) -> frozenset[str]:
    """The questions a show_if hides with the answers ``typed``, settled round by round
    (``CompiledPipeline.visibility_rounds``): each round's hidden answers are dropped before
    the next round reads them, so a chain of show_ifs resolves however its questions are
    ordered. A gate's questionnaire and the periodic operations review both judge this way.

    Args:
        questions: the questionnaire's questions by id (to give CEL their answers' types).
        rounds: that questionnaire's visibility rounds.
        typed: the answers the show_ifs may read, coerced.
    """
    hidden: set[str] = set()
    if not rounds:
        return frozenset()
    seen = for_rules(questions, typed)
    context = make_context(seen)
    for round_ in rounds:
        dropped = False
        for question in round_:
            if not _shown(pipeline, question, context, seen, hidden):
                hidden.add(question.id)
                dropped = seen.pop(question.id, None) is not None or dropped
        if dropped:
            context = make_context(seen)  # rebuilt only after a round that hid an answer read
    return frozenset(hidden)


def _only(answers: Mapping[str, AnswerValue], ids: frozenset[str] | None) -> Mapping[str, AnswerValue]:
    """The answers to ``ids`` (all of them when ``ids`` is None: some rule reads them all)."""
    return answers if ids is None else {qid: answers[qid] for qid in ids if qid in answers}


def _shown(
    pipeline: CompiledPipeline, question: Question, context: Any, seen: Mapping[str, Any], hidden: set[str]
) -> bool:
    """Whether ``question``'s show_if holds. One that waits for answers is shown (the answer may
    come), unless every answer it waits for belongs to a hidden question: that one cannot be
    given, so the question that depends on it is hidden too."""
    assert question.show_if is not None
    condition = pipeline.condition(question.show_if)
    try:
        return condition.holds(context)
    except MissingAnswer:
        waiting = condition.answer_refs - seen.keys()
        return not (waiting and waiting <= hidden)
    except ConditionError:
        return True


def typed_answers(pipeline: CompiledPipeline, answers: Mapping[str, Any]) -> dict[str, AnswerValue]:
    """The answers as readiness judges them (``Readiness.answers``): coerced to their questions'
    types, leaving out empty ones, ones that do not fit and ones to questions not in ``pipeline``."""
    return _coerce_all(pipeline.questions, answers)[0]


def _coerce_all(
    questions: Mapping[str, Question], answers: Mapping[str, Any]
) -> tuple[dict[str, AnswerValue], list[InvalidAnswer]]:
    typed: dict[str, AnswerValue] = {}
    invalid: list[InvalidAnswer] = []
    for qid, raw in answers.items():
        question = questions.get(qid)
        if question is None:
            continue  # an answer to a question removed from the pipeline stays on record, unused
        try:
            value = coerce(question, raw)
        except InvalidAnswer as error:
            invalid.append(error)
            continue
        if value is not None:
            typed[qid] = value
    return typed, invalid


def _applies(
    pipeline: CompiledPipeline, source: str | None, context: Any, default: bool, on_error: bool | None = None
) -> bool:
    """A required_if (show_ifs are settled by ``_shown``): when it cannot be evaluated yet (an
    answer it reads is missing), fall back to ``default``; when it fails with the answers given
    (a division by zero, mixed number types), to ``on_error`` (default: ``default``). A required_if that fails counts as
    required: a question must not stop being required because its rule broke."""
    if source is None:
        return default
    try:
        return pipeline.condition(source).holds(context)
    except MissingAnswer:
        return default
    except ConditionError:
        return default if on_error is None else on_error


def _risk_tier(
    pipeline: CompiledPipeline, rules: Sequence[RiskRule], context: Any
) -> tuple[str | None, tuple[str, ...], str | None]:
    """(tier, the answers it waits for, why a rule failed), by ``rules`` (the gate's own or, when
    it has none, an earlier gate's: ``CompiledPipeline.tier_rules``). First matching rule wins.
    A rule that cannot be judged stops the search, whether it waits for an answer or fails with
    the answers given: skipping it could place a high-risk initiative in a lower tier, with
    fewer approvers."""
    for rule in rules:
        try:
            if pipeline.condition(rule.when).holds(context):
                return rule.tier, (), None
        except MissingAnswer as missing:
            return None, (missing.question_id,), None
        except ConditionError as error:
            return None, (), f"the risk tier cannot be set: the rule for '{rule.tier}' fails ({error})"
    return None, (), None


def _judge(pipeline: CompiledPipeline, criterion: Any, context: Any) -> CriterionResult:
    condition: Condition = pipeline.condition(criterion.rule)
    common = {
        "id": criterion.id,
        "explain": criterion.explain,
        "blocking": criterion.blocking,
        "policy_tags": tuple(criterion.policy_tags),
    }
    try:
        met = condition.holds(context)
    except MissingAnswer as missing:
        return CriterionResult(**common, status=CriterionStatus.UNKNOWN, waiting_for=(missing.question_id,))
    except ConditionError as error:
        return CriterionResult(**common, status=CriterionStatus.UNKNOWN, error=str(error))
    return CriterionResult(**common, status=CriterionStatus.MET if met else CriterionStatus.UNMET)


def _approvals(
    pipeline: CompiledPipeline,
    gate: Gate,
    context: Any,
    role_holders: Mapping[str, Sequence[str]],
    excluded: set[str | None],
    tier_unknown: bool = False,
) -> tuple[ApprovalNeed, ...]:
    needed: dict[str, tuple[int, str | None]] = {}
    for rule in gate.approvals:
        because = None
        if rule.when is not None:
            condition = pipeline.condition(rule.when)
            try:
                if tier_unknown and "tier" in condition.variables:
                    # Fail closed: until the tier is known, a tier-dependent approval is required.
                    because = "required until the risk tier is known"
                elif not condition.holds(context):
                    continue
            except (MissingAnswer, ConditionError) as error:
                # Fail closed: an approval we cannot rule out is required.
                because = f"required until {getattr(error, 'question_id', 'the condition')} can be judged"
        current = needed.get(rule.role)
        if current is None or rule.min > current[0]:
            needed[rule.role] = (rule.min, because)
    out: list[ApprovalNeed] = []
    for role, (minimum, because) in needed.items():
        definition = pipeline.model.roles.get(role)
        configured = list(definition.slack_users) if definition else []
        holders = tuple(
            dict.fromkeys(u for u in [*configured, *role_holders.get(role, ())] if u not in excluded)
        )
        out.append(
            ApprovalNeed(
                role=role,
                label=(definition.label if definition and definition.label else role),
                min=minimum,
                holders=holders,
                usergroup=definition.slack_usergroup if definition else None,
                because=because,
            )
        )
    # One person's approval counts for one role: check the distinct people can fill every slot at
    # once (roles backed by a Slack user group are left out: their members are not known here).
    counted = [need for need in out if need.usergroup is None]
    people: dict[str, list[str]] = {}
    for need in counted:
        for holder in need.holders:
            people.setdefault(holder, []).append(need.role)
    short = unmet(list(people.items()), {need.role: need.min for need in counted})
    return tuple(
        replace(need, shared_short=True) if need.role in short and len(need.holders) >= need.min else need
        for need in out
    )
