"""Load a pipeline YAML file and report every problem in it, each with its place.

Three passes, each adding to one list of ``Problem``s:

1. YAML syntax (with the line and column PyYAML reports);
2. structure, through the pydantic models (wrong types, unknown keys, missing fields);
3. meaning: duplicate ids, gates between unknown stages, unreachable stages, choice questions
   without options, CEL that does not parse, rules that read unknown questions or roles or
   call unknown functions, and rules that fail on or never match the answers (``gates.dry_run``).

Only when the list is empty does the caller get a ``CompiledPipeline``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gates.conditions import (
    CEL_FUNCTIONS,
    KNOWN_VARIABLES,
    Condition,
    ConditionSyntaxError,
    compile_condition,
)
from gates.dry_run import DryRun
from gates.errors import PipelineError, Problem
from gates.pipeline import (
    CHOICE_TYPES,
    OPTION_TEXT_MAX,
    Gate,
    Pipeline,
    Question,
    QuestionType,
    RiskRule,
    option_text,
)

DEFAULT_PIPELINE = Path(__file__).parent / "defaults" / "pipeline.yaml"

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class CompiledPipeline:
    """A validated pipeline with its CEL compiled.

    Attributes:
        model: the pipeline as pydantic models.
        conditions: every CEL expression in the file, compiled, keyed by its source text.
        version: ``"<version>-<content hash>"``; reviews pin it so a decision can be replayed
            against exactly the rules it was made under, even if someone edited the file
            without bumping ``version``.
        source: where it was loaded from.
    """

    model: Pipeline
    conditions: dict[str, Condition] = field(repr=False)
    version: str
    source: str

    def condition(self, source: str) -> Condition:
        return self.conditions[source.strip()]

    @cached_property
    def questions(self) -> dict[str, Question]:
        """Every question of every gate by id (ids are unique across the pipeline)."""
        return {qid: question for qid, (_, question) in self.model.all_questions().items()}

    @cached_property
    def rule_inputs(self) -> frozenset[str] | None:
        """The question ids any rule reads, or None when some rule reads the answers as a whole.

        Readiness hands CEL only these answers: converting long free-text answers no rule reads
        was most of its cost.
        """
        if any(condition.reads_all_answers for condition in self.conditions.values()):
            return None
        return frozenset(ref for condition in self.conditions.values() for ref in condition.answer_refs)

    @cached_property
    def show_if_inputs(self) -> frozenset[str] | None:
        """The question ids show_ifs read, or None when one reads the answers as a whole."""
        conditions = [self.condition(q.show_if) for q in self.questions.values() if q.show_if]
        if any(condition.reads_all_answers for condition in conditions):
            return None
        return frozenset(ref for condition in conditions for ref in condition.answer_refs)

    @cached_property
    def gate_inputs(self) -> dict[str, frozenset[str] | None]:
        """Per gate, the question ids its rules read (show_if, required_if, criteria, risk tiers,
        approvals' when), or None when one of them reads the answers as a whole. While a gate is
        under review, these answers decide what it requires, so they are frozen with its own.

        A hidden question's answer does not count, so the show_if of every question read is an
        input too (and, in turn, the show_if of the questions that one reads)."""
        found: dict[str, frozenset[str] | None] = {}
        for gate in self.model.gates:
            sources = [q.show_if for q in gate.questions] + [q.required_if for q in gate.questions]
            sources += [c.rule for c in gate.criteria] + [r.when for r in self.tier_rules(gate)]
            sources += [a.when for a in gate.approvals]
            conditions = [self.condition(source) for source in sources if source]
            inputs = {ref for c in conditions for ref in c.answer_refs}
            frontier = list(inputs)
            while frontier:
                question = self.questions.get(frontier.pop())
                if question is None or question.show_if is None:
                    continue
                condition = self.condition(question.show_if)
                conditions.append(condition)
                frontier += condition.answer_refs - inputs
                inputs |= condition.answer_refs
            if any(condition.reads_all_answers for condition in conditions):
                found[gate.id] = None
            else:
                found[gate.id] = frozenset(inputs)
        return found

    def tier_rules(self, gate: Gate) -> list[RiskRule]:
        """The risk_tier rules that set the tier at ``gate``: its own or, when it has none but
        one of its criteria or approvals reads ``tier``, those of the nearest gate before it
        that has some (``Pipeline.tier_gate``): the tier is known from the first gate on. A gate
        that reads no tier is not held up by an earlier gate's rules waiting for an answer."""
        if gate.risk_tier or not self.reads_tier(gate):
            return list(gate.risk_tier)
        earlier = self.model.tier_gate(gate)
        return list(earlier.risk_tier) if earlier is not None else []

    def reads_tier(self, gate: Gate) -> bool:
        """Whether a criterion or approval rule of ``gate`` reads ``tier``."""
        sources = [c.rule for c in gate.criteria] + [a.when for a in gate.approvals if a.when]
        return any("tier" in self.condition(source).variables for source in sources)

    @cached_property
    def visibility_rounds(self) -> tuple[tuple[Question, ...], ...]:
        """The gates' questions with a show_if, in the order readiness settles whether they are
        shown (``_rounds``)."""
        return self._rounds(self.questions)

    @cached_property
    def operations_questions(self) -> dict[str, Question]:
        """The periodic operations review's questions by id (none without ``operations``)."""
        operations = self.model.operations
        return {q.id: q for q in operations.questions} if operations is not None else {}

    @cached_property
    def operations_visibility_rounds(self) -> tuple[tuple[Question, ...], ...]:
        """``visibility_rounds`` for the periodic operations review's questions."""
        return self._rounds(self.operations_questions)

    def _rounds(self, questions: Mapping[str, Question]) -> tuple[tuple[Question, ...], ...]:
        """The ``questions`` with a show_if, in the order their visibility is settled.

        A question's show_if reads only answers to questions always shown or settled in an
        earlier round, so each round sees exactly the answers that count (a hidden question's
        answer does not). A show_if that reads the answers as a whole has no such place: those
        come last, together (one reading its own question, directly or through a circle of
        show_ifs, is refused when the pipeline is loaded).
        """
        pending = {qid: q for qid, q in questions.items() if q.show_if is not None}
        reads = {
            qid: self.condition(q.show_if).answer_refs & pending.keys()
            for qid, q in pending.items()
            if q.show_if is not None and not self.condition(q.show_if).reads_all_answers
        }
        rounds: list[tuple[Question, ...]] = []
        settled: set[str] = set()
        while True:
            ready = [qid for qid in pending if qid in reads and reads[qid] <= settled]
            if not ready:
                break
            rounds.append(tuple(pending.pop(qid) for qid in ready))
            settled.update(ready)
        if pending:
            rounds.append(tuple(pending.values()))
        return tuple(rounds)


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so ``options: [yes, no]`` stay text."""


Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_pipeline(path: str | Path | None = None) -> CompiledPipeline:
    """Load and validate a pipeline file (the bundled default when ``path`` is None).

    Raises:
        PipelineError: listing every problem found, each with file, path and line.
    """
    file = Path(path) if path is not None else DEFAULT_PIPELINE
    name = str(path) if path is not None else "pipeline.yaml (bundled)"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError([Problem(name, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError([Problem(name, "", f"cannot read the file: {error}")]) from None
    return parse_pipeline(text, name)


def parse_pipeline(text: str, name: str = "<pipeline>") -> CompiledPipeline:
    """Validate pipeline YAML given as text; ``name`` is used in problem locations."""
    data, lines, repeated = _read_yaml(text, name)
    if repeated:
        # YAML keeps the last of two equal keys without a word: one of them is a mistake.
        raise PipelineError(
            [
                Problem(name, _dotted(path), f"'{path[-1]}' is given twice here", line)
                for path, line in repeated
            ]
        )
    if not isinstance(data, dict):
        raise PipelineError(
            [Problem(name, "", "the top level must be a mapping (version, stages, gates, ...)", 1)]
        )

    try:
        model = Pipeline.model_validate(data)
    except ValidationError as error:
        raise PipelineError(_structure_problems(error, name, lines)) from None

    problems: list[Problem] = []
    conditions: dict[str, Condition] = {}
    _check_meaning(model, name, lines, problems, conditions)
    if problems:
        raise PipelineError(problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return CompiledPipeline(model, conditions, f"{model.version}-{digest}", name)


def _read_yaml(text: str, name: str) -> tuple[Any, dict[PathKey, int], list[tuple[PathKey, int]]]:
    """The file's plain data, the line of every path in it, and each key given twice in one
    mapping (with the line of its second use).

    Raises:
        PipelineError: not YAML, empty, nested too deeply, expanding past ``MAX_VALUES``, with
            a list or mapping as a key, or with a merge key (``<<``).
    """
    try:
        node = yaml.compose(text, Loader=Yaml12Loader)
        if node is None:
            raise PipelineError([Problem(name, "", "the file is empty")])
        reader = _NodeReader()
        return reader.read(node, ()), reader.lines, reader.repeated
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f" (column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise PipelineError([Problem(name, "", f"YAML syntax error{where}: {problem}", line)]) from None
    except (RecursionError, _TooDeep):
        # PyYAML composes nested values recursively, and gives up some hundreds of levels down.
        raise PipelineError(
            [
                Problem(
                    name, "", f"values are nested more than {MAX_DEPTH} levels deep (brackets or indentation)"
                )
            ]
        ) from None
    except _MergeKey as error:
        message = "merge keys (<<) are not supported: repeat the keys or use an anchor for the whole value"
        raise PipelineError([Problem(name, _dotted(error.path), message, error.line)]) from None
    except _ComplexKey as error:
        raise PipelineError(
            [Problem(name, "", "a key must be a name, not a list or a mapping (`? [a, b]`)", error.line)]
        ) from None
    except _TooManyValues:
        raise PipelineError(
            [
                Problem(
                    name,
                    "",
                    f"the file expands to more than {MAX_VALUES:,} values; aliases (*name) that "
                    "repeat large anchors (&name), each inside the next, are the usual cause",
                )
            ]
        ) from None


# The bundled pipeline reads as ~2,300 values, 6 levels deep. Aliases let a few lines of YAML
# expand to billions ("billion laughs"), which would hold `pipeline validate` and start-up for
# hours; each value also records its path, so the work is values times depth, and both are bounded.
MAX_VALUES = 200_000
MAX_DEPTH = 64


class _TooManyValues(Exception):
    pass


class _TooDeep(Exception):
    pass


class _MergeKey(Exception):
    """``<<: *base``. Read as a plain key it gave "'from' is required" for keys the merge did
    give, and "unknown key '<<'"; refused with its own message rather than merged, as the
    bundled pipeline shows the simpler way (an anchor on a whole value, repeated by alias)."""

    def __init__(self, path: PathKey, line: int) -> None:
        super().__init__(line)
        self.path = path
        self.line = line


class _ComplexKey(Exception):
    """A list or mapping used as a key (``? [a, b]``): no key of a pipeline is one."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _NodeReader:
    """Plain data from YAML nodes, remembering the line of every path and each key given twice."""

    def __init__(self) -> None:
        self.lines: dict[PathKey, int] = {}
        self.repeated: list[tuple[PathKey, int]] = []
        self._values = 0

    def read(self, node: yaml.Node, path: PathKey) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooManyValues
        if len(path) > MAX_DEPTH:
            raise _TooDeep
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _ComplexKey(key_node.start_mark.line + 1)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _MergeKey((*path, "<<"), key_node.start_mark.line + 1)
                key = key_node.value
                if key in result:
                    self.repeated.append(((*path, key), key_node.start_mark.line + 1))
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = self.read(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, (*path, i)) for i, item in enumerate(node.value)]
        return Yaml12Loader("").construct_object(node, deep=True)


def _structure_problems(error: ValidationError, name: str, lines: dict[PathKey, int]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
        elif kind == "missing":
            message = f"'{loc[-1]}' is required"
        else:
            message = item["msg"]
            if "input" in item and not isinstance(item["input"], dict | list):
                message += f" (got {item['input']!r})"
        problems.append(Problem(name, _dotted(loc), message, _line_for(loc, lines)))
    return problems


def _check_meaning(
    model: Pipeline,
    name: str,
    lines: dict[PathKey, int],
    problems: list[Problem],
    conditions: dict[str, Condition],
) -> None:
    def report(loc: PathKey, message: str) -> None:
        problems.append(Problem(name, _dotted(loc), message, _line_for(loc, lines)))

    stages = set(model.stages)
    for index in _duplicates(model.stages):
        report(("stages", index), f"stage '{model.stages[index]}' is listed twice")
    for index in _duplicates([g.id for g in model.gates]):
        report(("gates", index, "id"), f"gate id '{model.gates[index].id}' is used twice")

    question_ids: set[str] = set()

    def check_questions(questions: list[Question], at_questions: PathKey, where: str) -> None:
        for qi, question in enumerate(questions):
            at = (*at_questions, qi)
            if question.id in question_ids:
                report(
                    (*at, "id"),
                    f"question id '{question.id}' is used twice (ids are unique across the pipeline)",
                )
            question_ids.add(question.id)
            if question.type in CHOICE_TYPES and not question.options:
                report((*at, "options"), f"a {question.type.value} question needs options")
            if question.options and question.type not in CHOICE_TYPES:
                report((*at, "options"), f"options only apply to choice questions, not {question.type.value}")
            if question.options and len(set(question.options)) != len(question.options):
                report((*at, "options"), "options must be distinct")
            for n, option in enumerate(question.options or []):
                if not option.strip():
                    # Slack refuses a menu option without text: the whole form would not open.
                    report((*at, "options", n), "an option must have some text")
                elif option != option.strip():
                    # Every answer is trimmed before it is matched (from a menu, a command, a
                    # file), so this option could never be picked. Refused rather than trimmed
                    # here: rules compare answers with options exactly, and one written against
                    # the option as given ("partly ") would then silently never match.
                    report(
                        (*at, "options", n),
                        f"option {option!r} of question '{question.id}' in {where} starts or ends "
                        f"with a space, so no answer can ever match it: write {option.strip()!r}",
                    )
            options = question.options or []
            # Answers match an option whatever their case ("us" from a menu, a command or a file
            # records "US" when it comes first): an option equal to an earlier one but for case
            # could never be recorded.
            first_in_lower_case: dict[str, int] = {}
            for n, option in enumerate(options):
                first = first_in_lower_case.setdefault(option.lower(), n)
                if options[first] != option:  # the same option twice is reported above
                    report(
                        (*at, "options", n),
                        f"option {option!r} of question '{question.id}' in {where} differs from "
                        f"options[{first}] {options[first]!r} only in case; answers are matched "
                        "whatever their case, so it could never be recorded: keep one of them",
                    )
            # A menu cuts a long option: two that differ only after the cut would look the
            # same, and a person could not tell which one they pick.
            first_shown_as: dict[str, int] = {}
            for n, option in enumerate(options):
                first = first_shown_as.setdefault(option_text(option), n)
                if options[first] != option:  # the same option twice is reported above
                    report(
                        (*at, "options", n),
                        f"option {option_text(option)!r} of question '{question.id}' in {where} "
                        f"looks the same as options[{first}] in a menu, which shows only "
                        f"{OPTION_TEXT_MAX} characters: make them differ within the first "
                        f"{OPTION_TEXT_MAX - 1}",
                    )
            if question.options and len(question.options) > 100:
                report((*at, "options"), "at most 100 options (a Slack select menu shows no more)")
            rules = question.validation
            if rules and rules.pattern:
                try:
                    re.compile(rules.pattern)
                except re.error as error:
                    report((*at, "validation", "pattern"), f"not a valid regular expression: {error}")
            if rules and rules.message is not None and rules.pattern is None:
                # The other limits already explain themselves; a lone message would never be shown.
                report(
                    (*at, "validation", "message"),
                    "message describes the pattern an answer must match; give a pattern or remove it",
                )
            if rules and rules.min is not None and rules.max is not None and rules.min > rules.max:
                report((*at, "validation"), "min is greater than max")

    for gi, gate in enumerate(model.gates):
        if gate.from_ not in stages:
            report(("gates", gi, "from"), f"'{gate.from_}' is not one of the stages {model.stages}")
        if gate.to not in stages:
            report(("gates", gi, "to"), f"'{gate.to}' is not one of the stages {model.stages}")
        check_questions(gate.questions, ("gates", gi, "questions"), f"gate '{gate.id}'")
        if (
            gate.review_reminder_days is not None
            and gate.review_escalation_days is not None
            and gate.review_escalation_days <= gate.review_reminder_days
        ):
            report(
                ("gates", gi, "review_escalation_days"),
                f"escalation after {gate.review_escalation_days} day(s) comes before the reminder "
                f"after {gate.review_reminder_days}; escalate later than you remind",
            )
        for index in _duplicates([c.id for c in gate.criteria]):
            report(
                ("gates", gi, "criteria", index, "id"),
                f"criterion id '{gate.criteria[index].id}' is used twice",
            )

    for role_at, role in _approval_roles(model):
        if role not in model.roles:
            report(
                role_at,
                f"role '{role}' is not defined under roles (defined: {', '.join(model.roles) or 'none'})",
            )
    if model.operations is not None:
        _check_operations(model, report, check_questions)
    _check_intake_people(model, report)
    for gi, gate in enumerate(model.gates):
        for ri, rule in enumerate(gate.risk_tier):
            if rule.tier not in model.risk_tiers:
                report(
                    ("gates", gi, "risk_tier", ri, "tier"),
                    f"'{rule.tier}' is not one of the risk tiers {model.risk_tiers}",
                )

    dry_run = DryRun(model)
    for loc, source, allow_tier in _expressions(model):
        try:
            condition = compile_condition(source)
        except ConditionSyntaxError as error:
            report(loc, f"{error} in `{source}`")
            continue
        conditions[condition.source] = condition
        unknown_vars = condition.variables - KNOWN_VARIABLES - ({"tier"} if allow_tier else set())
        if "tier" in condition.variables and not allow_tier:
            report(loc, "`tier` is only known in approval rules and criteria, not here")
        for variable in sorted(unknown_vars - {"tier"}):
            report(loc, f"unknown name '{variable}' in `{source}` (use answers.<question id> or tier)")
        for ref in sorted(condition.answer_refs - question_ids):
            report(loc, f"the rule reads answers.{ref}, but no question has the id '{ref}'")
        # By name, not by trying: a call behind `&&` or `||` is only made for some answers.
        unknown_functions = condition.functions - CEL_FUNCTIONS
        for function in sorted(unknown_functions):
            report(loc, f"unknown function '{function}' in `{source}`{_did_you_mean(function)}")
        if not unknown_vars and not unknown_functions and condition.answer_refs <= question_ids:
            for problem in dry_run.problems(condition):
                report(loc, f"`{source}` {problem}")

    _check_tier_known(model, conditions, report)
    _check_operations_rules(model, conditions, report)
    _check_show_if_cycles(model, conditions, report)
    reachable = _reachable(model)
    for index, stage in enumerate(model.stages):
        if stage not in reachable:
            report(("stages", index), f"stage '{stage}' cannot be reached: no gate leads to it")


def _check_tier_known(
    model: Pipeline, conditions: dict[str, Condition], report: Callable[[PathKey, str], None]
) -> None:
    """A criterion or approval that reads ``tier`` where no risk_tier rules set it (neither its
    gate's nor an earlier gate's) would always see it empty: ``tier != "high" || ...`` would
    hold for a high-risk initiative, and an approval ``when: tier == "high"`` never be asked."""
    for gi, gate in enumerate(model.gates):
        if model.tier_gate(gate) is not None:
            continue
        rules: list[tuple[PathKey, str | None]] = [
            (("gates", gi, "criteria", ci, "rule"), c.rule) for ci, c in enumerate(gate.criteria)
        ]
        rules += [(("gates", gi, "approvals", ai, "when"), a.when) for ai, a in enumerate(gate.approvals)]
        for loc, source in rules:
            condition = conditions.get(source.strip()) if source else None
            if condition is not None and "tier" in condition.variables:
                report(
                    loc,
                    f"`{source}` reads tier, but neither gate '{gate.id}' nor any gate before it has "
                    "risk_tier rules, so the tier is never set here: add risk_tier rules",
                )


def _check_operations_rules(
    model: Pipeline, conditions: dict[str, Condition], report: Callable[[PathKey, str], None]
) -> None:
    """A periodic review judges its questions' rules with the review's own answers only, so a
    rule reading a gate's question would never see an answer: it would never hold."""
    if model.operations is None:
        return
    own = {q.id for q in model.operations.questions}
    gate_of = {qid: gate.id for qid, (gate, _) in model.all_questions().items()}
    for qi, question in enumerate(model.operations.questions):
        for key in ("required_if", "show_if"):
            source = getattr(question, key)
            condition = conditions.get(source.strip()) if source else None
            if condition is None:
                continue
            for ref in sorted(condition.answer_refs - own):
                if ref in gate_of:  # an id no question has is reported with the rule already
                    report(
                        ("operations", "questions", qi, key),
                        f"the {key} of periodic-review question '{question.id}' reads answers.{ref}, "
                        f"a question of gate '{gate_of[ref]}': periodic-review rules can only read "
                        "the review's own questions",
                    )


def _check_show_if_cycles(
    model: Pipeline, conditions: dict[str, Condition], report: Callable[[PathKey, str], None]
) -> None:
    """A show_if that reads its own question, directly or through other show_ifs, lets an
    answer hide the question that holds it: it could then never be changed back in the form."""
    places: dict[str, PathKey] = {}
    reads: dict[str, frozenset[str]] = {}
    located: list[tuple[PathKey, Question]] = [
        (("gates", gi, "questions", qi), q)
        for gi, g in enumerate(model.gates)
        for qi, q in enumerate(g.questions)
    ]
    if model.operations is not None:
        located += [(("operations", "questions", qi), q) for qi, q in enumerate(model.operations.questions)]
    for at, question in located:
        condition = conditions.get(question.show_if.strip()) if question.show_if else None
        if condition is not None:
            places.setdefault(question.id, (*at, "show_if"))
            reads.setdefault(question.id, condition.answer_refs)
    reported: set[frozenset[str]] = set()
    for start in reads:
        cycle = _path_back(start, reads)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        if len(cycle) == 1:
            how = f"reads its own answer (answers.{start})"
        else:
            how = "reads its own answer through other show_ifs (" + " -> ".join([*cycle, start]) + ")"
        report(
            places[start],
            f"the show_if of question '{start}' {how}: an answer could hide the question that "
            "holds it, and it could never be changed back; base the show_if on other questions",
        )


def _path_back(start: str, reads: dict[str, frozenset[str]]) -> list[str] | None:
    """The questions from ``start`` along the show_ifs that lead back to it, or None."""
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop()
        for ref in sorted(reads.get(path[-1], frozenset())):
            if ref == start:
                return path
            if ref not in seen and ref in reads:
                seen.add(ref)
                paths.append([*path, ref])
    return None


def _did_you_mean(function: str) -> str:
    close = difflib.get_close_matches(function, sorted(CEL_FUNCTIONS), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _expressions(model: Pipeline) -> Iterable[tuple[PathKey, str, bool]]:
    """Every CEL expression with its place and whether ``tier`` is in scope there."""
    for gi, gate in enumerate(model.gates):
        for qi, question in enumerate(gate.questions):
            for key in ("required_if", "show_if"):
                source = getattr(question, key)
                if source is not None:
                    yield ("gates", gi, "questions", qi, key), source, False
        for ci, criterion in enumerate(gate.criteria):
            yield ("gates", gi, "criteria", ci, "rule"), criterion.rule, True
        for ri, rule in enumerate(gate.risk_tier):
            yield ("gates", gi, "risk_tier", ri, "when"), rule.when, False
        for ai, approval in enumerate(gate.approvals):
            if approval.when is not None:
                yield ("gates", gi, "approvals", ai, "when"), approval.when, True
    if model.operations is not None:
        for qi, question in enumerate(model.operations.questions):
            for key in ("required_if", "show_if"):
                source = getattr(question, key)
                if source is not None:
                    yield ("operations", "questions", qi, key), source, False


def _check_operations(
    model: Pipeline,
    report: Callable[[PathKey, str], None],
    check_questions: Callable[[list[Question], PathKey, str], None],
) -> None:
    operations = model.operations
    assert operations is not None
    if operations.stage is not None and operations.stage not in model.stages:
        report(("operations", "stage"), f"'{operations.stage}' is not one of the stages {model.stages}")
    check_questions(operations.questions, ("operations", "questions"), "the operations questionnaire")
    _check_operations_owner(model, report)
    if operations.role is None:
        return
    if operations.role not in model.roles:
        report(
            ("operations", "role"),
            f"role '{operations.role}' is not defined under roles (defined: {', '.join(model.roles) or 'none'})",
        )
        return
    # The receiving side must sign the handover itself: a project cannot declare on operations'
    # behalf that it accepts the system, so the rule must hold whatever the answers or the tier.
    stage = model.operations_stage
    for gi, gate in enumerate(model.gates):
        if gate.to != stage:
            continue
        if not any(rule.role == operations.role and rule.when is None for rule in gate.approvals):
            report(
                ("gates", gi, "approvals"),
                f"the handover into '{stage}' must always require the '{operations.role}' role's approval "
                f"(an approval rule `role: {operations.role}` without `when`)",
            )


def _check_operations_owner(model: Pipeline, report: Callable[[PathKey, str], None]) -> None:
    """``operations.owner_question`` must name a person question of a gate (its answer may
    record the periodic review), ``cadence_question`` a number question (every how many months)
    and ``first_review_question`` a date question (the first review's day)."""
    assert model.operations is not None
    named = (
        ("owner_question", model.operations.owner_question, QuestionType.USER, "person"),
        ("cadence_question", model.operations.cadence_question, QuestionType.NUMBER, "number"),
        ("first_review_question", model.operations.first_review_question, QuestionType.DATE, "date"),
    )
    for key, question_id, kind, word in named:
        if question_id is None:
            continue
        found = model.all_questions().get(question_id)
        if found is None:
            report(("operations", key), f"'{question_id}' is not a question of any gate")
        elif found[1].type is not kind:
            report(
                ("operations", key),
                f"'{question_id}' is a {found[1].type.value} question; {key} must name a "
                f"{word} question (type: {kind.value})",
            )


def _check_intake_people(model: Pipeline, report: Callable[[PathKey, str], None]) -> None:
    """``owner_question`` and ``sponsor_question`` must each name a person question of the
    intake: its answer at registration becomes the owner or the sponsor."""
    intake = model.intake
    people = [q.id for q in intake.questions if q.type is QuestionType.USER]
    for key in ("owner_question", "sponsor_question"):
        question_id = getattr(model, key)
        if question_id is None:
            continue
        question = intake.question(question_id)
        if question is None:
            report(
                (key,),
                f"'{question_id}' is not a question of the intake gate '{intake.id}' "
                f"(its person questions: {', '.join(people) or 'none'})",
            )
        elif question.type is not QuestionType.USER:
            report(
                (key,),
                f"'{question_id}' is a {question.type.value} question; {key} must name a person "
                "question (type: user) of the intake",
            )
    if model.owner_question is not None and model.owner_question == model.sponsor_question:
        report(
            ("sponsor_question",),
            f"owner_question and sponsor_question both name '{model.owner_question}'; the sponsor "
            "is asked for separately from the owner",
        )


def _approval_roles(model: Pipeline) -> Iterable[tuple[PathKey, str]]:
    for gi, gate in enumerate(model.gates):
        for ai, approval in enumerate(gate.approvals):
            yield ("gates", gi, "approvals", ai, "role"), approval.role


def _reachable(model: Pipeline) -> set[str]:
    seen = {model.stages[0]}
    frontier = [model.stages[0]]
    while frontier:
        stage = frontier.pop()
        for gate in model.gates:
            if gate.from_ == stage and gate.to not in seen:
                seen.add(gate.to)
                frontier.append(gate.to)
    return seen


def _duplicates(values: list[str]) -> list[int]:
    seen: set[str] = set()
    indexes = []
    for index, value in enumerate(values):
        if value in seen:
            indexes.append(index)
        seen.add(value)
    return indexes


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_for(loc: PathKey, lines: dict[PathKey, int]) -> int | None:
    """The line of the deepest part of ``loc`` that exists in the file."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None
