"""Pipeline loading: every kind of mistake is reported with its file, path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gates.errors import PipelineError, Problem
from gates.loader import DEFAULT_PIPELINE, MAX_DEPTH, load_pipeline, parse_pipeline
from gates.pipeline import QuestionType

VALID = """\
version: 2
stages: [idea, poc, pilot]
roles:
  risk: {slack_users: [URISK]}
gates:
  - id: intake
    from: idea
    to: poc
    questions:
      - id: personal_data
        label: Personal data
        type: yes_no
      - id: dpia
        label: DPIA
        type: url
        required_if: answers.personal_data == "yes"
    criteria:
      - id: screened
        rule: has(answers.personal_data)
        explain: Screen for personal data.
    risk_tier:
      - {tier: high, when: 'answers.personal_data == "yes"'}
    approvals:
      - {role: risk, min: 1}
  - id: pilot
    from: poc
    to: pilot
"""


def problems(text: str) -> list[Problem]:
    """The problems reported for ``text`` (which must be rejected)."""
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(textwrap.dedent(text), "broken.yaml")
    found = caught.value.problems
    assert found, "a PipelineError must carry at least one problem"
    assert str(caught.value) == "\n".join(str(p) for p in found)
    return found


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``fragment``."""
    hits = [n for n, line in enumerate(textwrap.dedent(text).splitlines(), 1) if fragment in line]
    return hits[occurrence - 1]


def only(found: list[Problem]) -> Problem:
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def assert_names_the_place(problem: Problem, path: str, line: int, *fragments: str) -> None:
    assert problem.file == "broken.yaml"
    assert problem.path == path
    assert problem.line == line
    assert str(problem).startswith(f"broken.yaml:{line}: {path}: ")
    for fragment in fragments:
        assert fragment in problem.message


def test_the_valid_example_loads() -> None:
    pipeline = parse_pipeline(VALID, "ok.yaml")
    assert pipeline.version.startswith("2-")
    assert pipeline.model.gate("intake") is not None
    assert pipeline.condition('answers.personal_data == "yes"').answer_refs == {"personal_data"}


def test_the_version_changes_with_the_content() -> None:
    edited = VALID.replace("label: DPIA", "label: DPIA link")
    assert parse_pipeline(VALID).version != parse_pipeline(edited).version


def test_the_bundled_default_pipeline_loads_and_validates() -> None:
    assert DEFAULT_PIPELINE.exists(), f"the default pipeline is missing at {DEFAULT_PIPELINE}"
    pipeline = load_pipeline()
    assert len(pipeline.model.gates) >= 1
    assert pipeline.source == "pipeline.yaml (bundled)"


def test_a_file_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="file not found"):
        load_pipeline(tmp_path / "nope.yaml")


def test_a_file_on_disk_is_named_in_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(VALID.replace("to: pilot", "to: pilots"), encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    assert str(caught.value).startswith(f"{path}:{line_of(VALID, 'to: pilot')}: gates[1].to: ")


def test_yaml_syntax_error_names_the_line() -> None:
    text = VALID.replace("stages: [idea, poc, pilot]", "stages: [idea, poc, pilot")
    problem = only(problems(text))
    assert problem.path == ""
    assert problem.line == 3
    assert problem.message.startswith("YAML syntax error (column")


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n"])
def test_an_empty_file_is_reported(text: str) -> None:
    assert only(problems(text)).message == "the file is empty"


def test_aliases_that_expand_to_billions_of_values_are_refused_at_once() -> None:
    """Nine lines of anchors, each repeating the one before ten times, mean 10^9 values: read
    as written, `pipeline validate` and start-up would run for hours."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
    problem = only(problems("\n".join(lines) + "\n"))
    assert problem.message.startswith("the file expands to more than 200,000 values")
    assert "aliases (*name)" in problem.message


def test_an_anchor_used_a_few_times_is_read() -> None:
    text = VALID.replace("stages: [idea, poc, pilot]", "stages: &stages [idea, poc, pilot]\nx-copy: *stages")
    assert only(problems(text)).path == "x-copy"  # read through the alias, then refused as unknown


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 5000])
def test_values_nested_too_deep_are_reported_not_crashed_on(depth: int) -> None:
    """Past the limit, or past what PyYAML itself can compose (some hundreds of levels)."""
    problem = only(problems("version: 1\nstages: " + "[" * depth + "]" * depth + "\n"))
    assert problem.message.startswith(f"values are nested more than {MAX_DEPTH} levels deep")


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH  # the innermost list sits MAX_DEPTH keys and indexes down
    assert only(problems(VALID + "x-deep: " + "[" * depth + "]" * depth + "\n")).path == "x-deep"


def test_a_top_level_list_is_reported() -> None:
    assert "top level must be a mapping" in only(problems("- idea\n- poc\n")).message


def test_a_wrong_type_names_the_path_and_line() -> None:
    text = VALID.replace("      - {role: risk, min: 1}", "      - {role: risk, min: several}")
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].approvals[0].min", line_of(text, "min: several"), "'several'")


def test_a_wrong_type_deep_in_a_question_names_the_path() -> None:
    text = VALID.replace("        type: url\n", "        type: url\n        validation: {max_length: long}\n")
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].questions[1].validation.max_length", line_of(text, "max_length")
    )


def test_an_unknown_question_type_is_reported() -> None:
    text = VALID.replace("type: url", "type: link")
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].questions[1].type", line_of(text, "type: link"), "'link'")


def test_an_unknown_key_is_reported_where_it_is() -> None:
    text = VALID.replace("        required_if:", "        requried: true\n        required_if:")
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].questions[1].requried", line_of(text, "requried"), "unknown key 'requried'"
    )


def test_a_missing_field_is_reported() -> None:
    text = VALID.replace("        explain: Screen for personal data.\n", "")
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].criteria[0].explain", line_of(text, "id: screened"), "required")


@pytest.mark.parametrize(
    ("edit", "path", "marker", "occurrence", "fragment"),
    [
        (
            ("      - id: dpia\n", "      - id: personal_data\n"),
            "gates[0].questions[1].id",
            "id: personal_data",
            2,
            "question id 'personal_data' is used twice",
        ),
        (
            ("  - id: pilot\n", "  - id: intake\n"),
            "gates[1].id",
            "id: intake",
            2,
            "gate id 'intake' is used twice",
        ),
        (
            ("    risk_tier:\n", "      - {id: screened, rule: 'true', explain: again}\n    risk_tier:\n"),
            "gates[0].criteria[1].id",
            "id: screened, rule",
            1,
            "criterion id 'screened' is used twice",
        ),
        (
            ("stages: [idea, poc, pilot]", "stages: [idea, poc, pilot, poc]"),
            "stages[3]",
            "stages:",
            1,
            "stage 'poc' is listed twice",
        ),
    ],
    ids=["question", "gate", "criterion", "stage"],
)
def test_duplicate_ids_are_reported(
    edit: tuple[str, str], path: str, marker: str, occurrence: int, fragment: str
) -> None:
    text = VALID.replace(*edit)
    problem = only(problems(text))
    assert_names_the_place(problem, path, line_of(text, marker, occurrence), fragment)


@pytest.mark.parametrize(
    ("edit", "path", "marker"),
    [
        (("    from: poc\n", "    from: proof\n"), "gates[1].from", "from: proof"),
        (("    to: poc\n", "    to: prod\n"), "gates[0].to", "to: prod"),
    ],
)
def test_a_gate_between_unknown_stages_is_reported(edit: tuple[str, str], path: str, marker: str) -> None:
    text = VALID.replace(*edit)
    found = problems(text)
    problem = next(p for p in found if p.path == path)
    assert_names_the_place(problem, path, line_of(text, marker), "is not one of the stages")


def test_a_rule_naming_an_unknown_question_is_reported() -> None:
    text = VALID.replace(
        'required_if: answers.personal_data == "yes"', 'required_if: answers.personal == "yes"'
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[1].required_if",
        line_of(text, "required_if"),
        "answers.personal",
        "no question has the id 'personal'",
    )


def test_a_rule_naming_an_unknown_variable_is_reported() -> None:
    text = VALID.replace("rule: has(answers.personal_data)", "rule: has(answer.personal_data)")
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].criteria[0].rule", line_of(text, "rule:"), "unknown name 'answer'"
    )


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("size(answers.dpia) > 10 && sise(answers.dpia) > 10", "sise"),  # a misspelt function
        (
            'answers.weeks <= "twelve"',
            "cannot be evaluated with answers of the questions' types",
        ),  # a number against text
        ("answers.dpia", "gives text where true or false is needed"),  # not a condition at all
        ('answers.personal_data == "Yes"', 'answers.personal_data is never "Yes" (it is one of "yes", "no")'),
    ],
)
def test_a_rule_that_parses_but_can_never_work_is_reported(rule: str, fragment: str) -> None:
    text = VALID.replace("rule: has(answers.personal_data)", f"rule: '{rule}'").replace(
        "    criteria:\n", "      - {id: weeks, label: Weeks, type: number}\n    criteria:\n"
    )
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].criteria[0].rule", line_of(text, "rule:"), fragment)


def test_a_tier_that_is_not_one_of_the_risk_tiers_is_reported_where_it_is_compared() -> None:
    text = VALID.replace(
        "    approvals:\n      - {role: risk, min: 1}",
        "    approvals:\n      - {role: risk, min: 1, when: 'tier == \"hgih\"'}",
    )
    problem = only(problems(text))
    assert 'tier is never "hgih"' in problem.message and problem.path == "gates[0].approvals[0].when"


def test_a_rule_that_fails_only_for_some_answers_loads() -> None:
    # CEL adds no int to a double: fails for a whole number, works for 2.5; readiness says so then.
    text = VALID.replace("rule: has(answers.personal_data)", "rule: 'size(answers.dpia) + 0.5 > 2.0 || true'")
    parse_pipeline(textwrap.dedent(text), "fine.yaml")


def test_a_key_given_twice_in_one_place_is_reported_at_its_second_line() -> None:
    # YAML would keep the last value without a word; one of the two is a mistake.
    text = VALID.replace("    to: poc\n", "    to: poc\n    time_box_days: 30\n    time_box_days: 60\n", 1)
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].time_box_days", line_of(text, "time_box_days", 2), "'time_box_days' is given twice"
    )


def test_tier_is_refused_in_a_show_if() -> None:
    text = VALID.replace('required_if: answers.personal_data == "yes"', 'show_if: tier == "high"')
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].questions[1].show_if", line_of(text, "show_if"), "`tier`")


def test_a_cel_syntax_error_names_its_position() -> None:
    text = VALID.replace(
        "{tier: high, when: 'answers.personal_data == \"yes\"'}",
        "{tier: high, when: 'answers.personal_data =='}",
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].risk_tier[0].when", line_of(text, "tier: high"), "CEL syntax error at column 25"
    )
    assert "`answers.personal_data ==`" in problem.message


def test_a_choice_question_without_options_is_reported() -> None:
    text = VALID.replace("        type: yes_no\n", "        type: choice\n")
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[0].options",
        line_of(text, "id: personal_data"),
        "choice question needs options",
    )


@pytest.mark.parametrize("blank", ['""', "' '"])
def test_an_option_without_text_is_reported(blank: str) -> None:
    """Slack refuses a menu option with no text, so the form would never open."""
    text = VALID.replace(
        "        type: yes_no\n", f"        type: choice\n        options: [yes, {blank}, no]\n"
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].questions[0].options[1]", line_of(text, "options: [yes"), "must have some text"
    )


@pytest.mark.parametrize("spaced", ["'partly '", "' partly'"])
def test_an_option_with_spaces_around_it_is_reported(spaced: str) -> None:
    """Answers are trimmed before they are matched, so no answer could ever pick it: chosen from
    the menu, "partly " came back refused as "'partly' is not one of: yes, partly , no"."""
    text = VALID.replace(
        "        type: yes_no\n", f"        type: choice\n        options: [yes, {spaced}, no]\n"
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[0].options[1]",
        line_of(text, "options: [yes"),
        f"option {spaced} of question 'personal_data' in gate 'intake' starts or ends with a space",
        "write 'partly'",
    )


def test_long_options_that_look_the_same_in_a_menu_are_reported() -> None:
    """A menu shows 75 characters of an option: these two differ only after that, so both would
    read "...every single tar…" and a person could not tell which one they pick."""
    common = "Yes, the model was evaluated on the held-out data and met every single target"
    text = VALID.replace(
        "        type: yes_no\n",
        f"        type: choice\n        options: ['yes', '{common} we set', '{common} except one']\n",
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[0].options[2]",
        line_of(text, "options: ['yes'"),
        f"option '{common[:74]}…' of question 'personal_data' in gate 'intake' looks the same as "
        "options[1] in a menu, which shows only 75 characters: make them differ within the first 74",
    )


def test_long_options_that_differ_within_what_a_menu_shows_load() -> None:
    options = ["yes", "a" * 73 + "X" + "z" * 20, "a" * 73 + "Y" + "z" * 20, "a" * 75]
    text = VALID.replace(
        "        type: yes_no\n", f"        type: choice\n        options: [{', '.join(options)}]\n"
    )
    assert parse_pipeline(textwrap.dedent(text), "fine.yaml").questions["personal_data"].options == options


def test_options_on_a_question_that_is_not_a_choice_are_reported() -> None:
    text = VALID.replace("        type: url\n", "        type: url\n        options: [a, b]\n")
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].questions[1].options", line_of(text, "options: [a, b]"), "only apply"
    )


def test_an_unreachable_stage_is_reported() -> None:
    text = VALID.replace("stages: [idea, poc, pilot]", "stages: [idea, poc, pilot, production]")
    problem = only(problems(text))
    assert_names_the_place(problem, "stages[3]", line_of(text, "stages:"), "'production' cannot be reached")


def test_an_unknown_role_in_approvals_is_reported() -> None:
    text = VALID.replace("{role: risk, min: 1}", "{role: dpo, min: 1}")
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].approvals[0].role", line_of(text, "role: dpo"), "role 'dpo' is not defined", "risk"
    )


def test_an_unknown_risk_tier_is_reported() -> None:
    text = VALID.replace("{tier: high,", "{tier: severe,")
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].risk_tier[0].tier", line_of(text, "tier: severe"), "'severe'")


PEOPLE = VALID.replace(
    """      - id: personal_data
""",
    """      - {id: lead, label: Lead, type: user}
      - {id: data_owner, label: Data owner, type: user}
      - {id: funder, label: Funder, type: user}
      - id: personal_data
""",
).replace(
    "stages: [idea, poc, pilot]", "owner_question: lead\nsponsor_question: funder\nstages: [idea, poc, pilot]"
)


def test_the_owner_and_sponsor_questions_are_the_ones_named() -> None:
    model = parse_pipeline(PEOPLE).model
    assert (model.owner_question_id, model.sponsor_question_id) == ("lead", "funder")
    assert load_pipeline().model.owner_question_id == "initiative_owner"
    assert load_pipeline().model.sponsor_question_id == "business_sponsor"


def test_without_them_only_the_conventional_ids_name_the_owner_and_sponsor() -> None:
    """A person question whose id merely contains "owner" (the data owner) names nobody."""
    unnamed = PEOPLE.replace("owner_question: lead\nsponsor_question: funder\n", "")
    model = parse_pipeline(unnamed).model
    assert (model.owner_question_id, model.sponsor_question_id) == (None, None)
    conventional = unnamed.replace("id: lead,", "id: owner,").replace("id: funder,", "id: business_sponsor,")
    model = parse_pipeline(conventional).model
    assert (model.owner_question_id, model.sponsor_question_id) == ("owner", "business_sponsor")


@pytest.mark.parametrize(
    ("edit", "path", "fragments"),
    [
        (
            ("owner_question: lead", "owner_question: leader"),
            "owner_question",
            ("'leader' is not a question of the intake gate 'intake'", "lead, data_owner, funder"),
        ),
        (
            ("sponsor_question: funder", "sponsor_question: dpia"),
            "sponsor_question",
            ("'dpia' is a url question", "(type: user)"),
        ),
        (("sponsor_question: funder", "sponsor_question: lead"), "sponsor_question", ("both name 'lead'",)),
    ],
)
def test_an_owner_or_sponsor_question_that_is_not_a_person_question_of_the_intake_is_reported(
    edit: tuple[str, str], path: str, fragments: tuple[str, ...]
) -> None:
    text = PEOPLE.replace(*edit)
    problem = only(problems(text))
    assert_names_the_place(problem, path, line_of(text, f"{path}:"), *fragments)


def test_a_bad_regex_pattern_is_reported() -> None:
    text = VALID.replace(
        "        type: url\n", "        type: url\n        validation: {pattern: 'https://(wiki'}\n"
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[1].validation.pattern",
        line_of(text, "pattern:"),
        "not a valid regular expression",
    )


def test_a_pattern_may_carry_the_message_people_see_instead_of_the_regex() -> None:
    text = VALID.replace(
        "        type: url\n",
        "        type: url\n"
        "        validation: {pattern: 'https://wiki\\..*', message: ' a link to the wiki '}\n",
    )
    rules = parse_pipeline(text).questions["dpia"].validation
    assert rules is not None and rules.message == "a link to the wiki"


def test_a_message_without_a_pattern_is_reported() -> None:
    text = VALID.replace(
        "        type: url\n", "        type: url\n        validation: {message: 'a link to the wiki'}\n"
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[1].validation.message",
        line_of(text, "message:"),
        "describes the pattern",
    )


@pytest.mark.parametrize("message", ["''", "'   '", "'" + "a very long explanation " * 5 + "'", "[a, b]"])
def test_a_pattern_message_that_is_empty_too_long_or_not_text_is_reported(message: str) -> None:
    text = VALID.replace(
        "        type: url\n",
        f"        type: url\n        validation: {{pattern: 'https://wiki\\..*', message: {message}}}\n",
    )
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].questions[1].validation.message", line_of(text, "message:"))


def test_every_pattern_of_the_bundled_pipeline_explains_itself() -> None:
    pipeline = load_pipeline()
    questions = list(pipeline.questions.values())
    if pipeline.model.operations is not None:
        questions += pipeline.model.operations.questions
    patterned = [q for q in questions if q.validation is not None and q.validation.pattern is not None]
    assert patterned, "the bundled pipeline has no pattern left to check"
    assert [q.id for q in patterned if q.validation is not None and not q.validation.message] == []


def test_min_greater_than_max_is_reported() -> None:
    text = VALID.replace(
        "        type: url\n", "        type: number\n        validation: {min: 10, max: 1}\n"
    )
    problem = only(problems(text))
    assert_names_the_place(
        problem, "gates[0].questions[1].validation", line_of(text, "min: 10"), "min is greater"
    )


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = VALID.replace("{role: risk, min: 1}", "{role: dpo, min: 1}").replace(
        "{tier: high,", "{tier: severe,"
    )
    assert {p.path for p in problems(text)} == {"gates[0].approvals[0].role", "gates[0].risk_tier[0].tier"}


def test_yes_and_no_options_stay_text() -> None:
    text = VALID.replace(
        "        type: yes_no\n", "        type: choice\n        options: [yes, no, partly, on, off]\n"
    )
    question = parse_pipeline(text).model.gates[0].questions[0]
    assert question.type is QuestionType.CHOICE
    assert question.options == ["yes", "no", "partly", "on", "off"]


def test_true_and_false_are_still_booleans() -> None:
    text = VALID.replace("        type: yes_no\n", "        type: yes_no\n        required: true\n")
    assert parse_pipeline(text).model.gates[0].questions[0].required is True


def test_a_problem_prints_file_line_path_and_message() -> None:
    problem = Problem("p.yaml", "gates[2].questions[4].required_if", "boom", 17)
    assert str(problem) == "p.yaml:17: gates[2].questions[4].required_if: boom"
    assert str(Problem("p.yaml", "", "the file is empty")) == "p.yaml: the file is empty"


def test_rules_using_macros_load() -> None:
    text = VALID.replace(
        "rule: has(answers.personal_data)",
        'rule: \'answers.personal_data.exists(c, c == "y") || answers.exists(k, k == "dpia")\'',
    )
    pipeline = parse_pipeline(text)
    rule = pipeline.model.gates[0].criteria[0].rule
    assert pipeline.condition(rule).variables == {"answers"}


BUNDLED = DEFAULT_PIPELINE.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("written", "edited", "path", "fragments"),
    [
        # Behind `&&`: the low and medium tiers never reach the call, so trying it misses it.
        (
            'when: tier == "high"',
            'when: tier == "high" && sizee(answers) > 0',
            "gates[0].approvals[1].when",
            ("unknown function 'sizee'", "(did you mean size?)"),
        ),
        # Only reached when personal data is "no".
        (
            'rule: answers.personal_data == "no" ||',
            'rule: answers.personal_data == "no" && sise(answers) > 0 ||',
            "gates[0].criteria[5].rule",
            ("unknown function 'sise'",),
        ),
        # A choice of yes/partly/no is never a number: the gate could never pass.
        (
            'rule: answers.pilot_exit_criteria_met in ["yes", "partly"]',
            "rule: answers.pilot_exit_criteria_met == 3",
            "gates[2].criteria[2].rule",
            ('answers.pilot_exit_criteria_met is never 3 (it is one of "yes", "partly", "no")',),
        ),
    ],
)
def test_a_mistake_the_sample_answers_never_reach_is_reported_in_the_bundled_pipeline(
    written: str, edited: str, path: str, fragments: tuple[str, ...]
) -> None:
    assert written in BUNDLED
    text = BUNDLED.replace(written, edited, 1)
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(text, "broken.yaml")
    problem = only(caught.value.problems)
    assert_names_the_place(problem, path, line_of(text, edited), *fragments)


WITH_TYPES = VALID.replace(
    "    criteria:\n",
    "      - {id: weeks, label: Weeks, type: number}\n"
    "      - {id: share, label: Share, type: percent}\n"
    "      - {id: launch, label: Launch, type: date}\n"
    "      - {id: kind, label: Kind, type: choice, options: [model, rules, 'it''s \"mixed\"']}\n"
    "      - {id: regions, label: Regions, type: multi_choice, options: [eu, us]}\n"
    "    criteria:\n",
)


def rule_problems(rule: str) -> list[Problem]:
    """The problems of WITH_TYPES with ``rule`` as its first criterion's rule."""
    return problems(WITH_TYPES.replace("rule: has(answers.personal_data)", f"rule: '{rule}'"))


def test_the_pipeline_for_rule_tests_loads() -> None:
    parse_pipeline(WITH_TYPES)


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ('answers.weeks == "3"', 'answers.weeks is never "3" (it is a number)'),
        ("answers.share != true", "answers.share is never true (it is a number)"),
        ("answers.dpia == 3", "answers.dpia is never 3 (it is text)"),
        ("answers.personal_data == true", 'answers.personal_data is never true (it is one of "yes", "no")'),
        ('3 == answers.kind || answers.kind == "rules"', 'answers.kind is never 3 (it is one of "model",'),
        ('answers["kind"] == "Model"', 'answers.kind is never "Model"'),
        ('answers.kind in ["model", "rule"]', 'answers.kind is never "rule"'),
        ('"EU" in answers.regions', 'answers.regions never contains "EU" (its options are "eu", "us")'),
        ('answers.regions == "eu"', 'answers.regions is never "eu" (it is the list of options chosen)'),
        ('answers.launch == "2025-01-01"', 'answers.launch is never "2025-01-01" (it is a date)'),
        ('(has(answers.kind) ? answers.kind : "model") == "model" || tier == "High"', 'tier is never "High"'),
    ],
)
def test_a_comparison_no_answer_can_satisfy_is_reported_whatever_its_type(rule: str, fragment: str) -> None:
    problem = only(rule_problems(rule))
    assert_names_the_place(problem, "gates[0].criteria[0].rule", line_of(WITH_TYPES, "rule:"), fragment)
    assert problem.message.endswith("never holds as meant")


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        (
            'tier == "high" && answers.weeks <= "twelve"',
            'cannot be evaluated when tier is "high": ',
        ),
        (
            'answers.personal_data == "no" && answers.weeks <= "twelve"',
            'cannot be evaluated when answers.personal_data is "no": ',
        ),
        (
            'answers.kind == "rules" ? answers.dpia : true',
            'gives text where true or false is needed when answers.kind is "rules"',
        ),
        ('"us" in answers.regions && size(answers.dpia) + 0.5 > 1.0', 'when answers.regions is ["us"]'),
    ],
)
def test_a_rule_that_fails_behind_a_branch_the_first_option_skips_is_reported(
    rule: str, fragment: str
) -> None:
    problem = only(rule_problems(rule))
    assert_names_the_place(problem, "gates[0].criteria[0].rule", line_of(WITH_TYPES, "rule:"), fragment)


@pytest.mark.parametrize(
    "rule",
    [
        'tier == "high" && size(answers) > 0',
        'answers.personal_data == "no" && answers.weeks > 3',
        'answers.personal_data == "no" || answers.dpia.startsWith("https://") && answers.dpia.contains("/")',
        "answers.weeks == 3.5 || answers.weeks != 0 || -1 < answers.weeks || answers.weeks == -2",
        "answers.share == 50 || answers.share >= 12.5",
        'answers.kind in ["model", "rules"] && answers.kind != "model"',
        'answers.kind == \'model\' || answers.kind == r"rules" || answers.kind == "it\'s \\"mixed\\""',
        '"eu" in answers.regions || answers.regions.exists(r, r == "us")',
        'string(answers.weeks) == "3" || int(answers.share) == 3 || size(answers.dpia) == 0',
        'answers.launch > timestamp("2025-01-01T00:00:00Z") && answers.launch.getFullYear() == 2025',
        'answers.dpia == "3" && answers.dpia != "" && answers["personal_data"] != "no"',
        'answers.exists(k, k == "weeks") && tier in ["low", "medium"]',
        # Reads every answer (size of the map) and every tier: still quick, and no false alarm.
        'size(answers) > 3 && tier != "low" && answers.kind != "rules"',
    ],
)
def test_rules_that_can_hold_still_load(rule: str) -> None:
    text = WITH_TYPES.replace(
        "rule: has(answers.personal_data)", f"rule: '{rule.replace(chr(39), chr(39) * 2)}'"
    )
    parse_pipeline(text, "fine.yaml")


def test_a_misspelt_function_is_reported_once_wherever_it_is_called() -> None:
    found = rule_problems(
        'answers.dpia.sizee() > 3 || answers.weeks > 2 || tier == "high" && sizee(answers) > 1'
    )
    problem = only(found)
    assert "unknown function 'sizee'" in problem.message and "did you mean size?" in problem.message


def test_a_rule_reading_too_many_options_to_combine_is_still_tried_on_each_option() -> None:
    # 4 options to the power of 5 questions, times 3 tiers: more combinations than are tried.
    choices = "".join(
        f"      - {{id: c{n}, label: C{n}, type: choice, options: [a, b, c, d]}}\n" for n in range(5)
    )
    text = WITH_TYPES.replace("    criteria:\n", choices + "    criteria:\n")
    reads = " && ".join(f'answers.c{n} != "a"' for n in range(5))
    rule = f'{reads} && tier != "low" && answers.c4 == "d" && answers.weeks <= "twelve"'
    problem = only(problems(text.replace("rule: has(answers.personal_data)", f"rule: '{rule}'")))
    assert "cannot be evaluated with some of the answers the questions can take: " in problem.message


def test_a_rule_reading_tier_where_no_gate_sets_it_is_reported() -> None:
    """Without risk_tier rules at the gate or before it the tier is always empty: the DPO
    approval for the high tier would never be asked."""
    text = VALID.replace(
        "    risk_tier:\n      - {tier: high, when: 'answers.personal_data == \"yes\"'}\n", ""
    ).replace("      - {role: risk, min: 1}\n", "      - {role: risk, min: 1, when: 'tier == \"high\"'}\n")
    (problem,) = problems(text)
    assert problem.path == "gates[0].approvals[0].when"
    assert "neither gate 'intake' nor any gate before it has risk_tier rules" in problem.message


def test_a_gate_without_risk_tier_rules_of_its_own_may_read_the_tier_set_before_it() -> None:
    text = VALID + "    approvals:\n      - {role: risk, when: 'tier == \"high\"'}\n"
    pipeline = parse_pipeline(text, "ok.yaml")
    intake, pilot = pipeline.model.gates
    assert pipeline.model.tier_gate(pilot) is intake
    assert pipeline.tier_rules(pilot) == intake.risk_tier
    # A gate that reads no tier is not held up by the intake's rules waiting for an answer.
    without = parse_pipeline(VALID, "ok.yaml")
    assert without.tier_rules(without.model.gates[1]) == []


def test_a_list_index_past_the_sample_answers_is_reported_not_a_traceback() -> None:
    problem = only(rule_problems('answers.regions[1] != "us"'))
    assert_names_the_place(
        problem, "gates[0].criteria[0].rule", line_of(WITH_TYPES, "rule:"), "cannot be evaluated"
    )
    assert "index out of bounds: 1" in problem.message


@pytest.mark.parametrize(
    ("rule", "kind"),
    [
        ("answers.weeks * 1.2 > 10.0", "a whole number (like 1)"),  # 5000 typed: never evaluated
        ("answers.weeks + 1 > 10", "a decimal (like 1.5)"),  # 5000.5 typed: never evaluated
    ],
)
def test_a_number_rule_that_fails_for_whole_or_for_decimal_answers_is_reported(rule: str, kind: str) -> None:
    """Answers are kept whole or decimal as typed: such a rule leaves the gate stuck for one kind."""
    problem = only(rule_problems(rule))
    assert_names_the_place(
        problem,
        "gates[0].criteria[0].rule",
        line_of(WITH_TYPES, "rule:"),
        f"cannot be evaluated when a number is answered as {kind}",
        "read it as double(answers.weeks)",
    )


def test_a_number_rule_read_as_a_decimal_loads() -> None:
    parse_pipeline(
        WITH_TYPES.replace("rule: has(answers.personal_data)", "rule: 'double(answers.weeks) * 1.2 > 10.0'")
    )


def test_a_map_lookup_without_an_entry_for_an_option_is_reported() -> None:
    """Readiness then read "waiting for: model", as if "model" were a question to answer."""
    problem = only(rule_problems('{"rules": 1}[answers.kind] >= 1'))
    assert_names_the_place(
        problem,
        "gates[0].criteria[0].rule",
        line_of(WITH_TYPES, "rule:"),
        "cannot be evaluated when answers.kind is \"model\": the map has no entry for 'model'",
    )


def test_a_show_if_reading_its_own_question_is_reported() -> None:
    """Answering "no" hid the question: its answer could never be changed back in the form."""
    text = VALID.replace(
        "        type: yes_no\n", '        type: yes_no\n        show_if: answers.personal_data == "yes"\n'
    )
    problem = only(problems(text))
    assert_names_the_place(problem, "gates[0].questions[0].show_if", line_of(VALID, "type: yes_no") + 1)
    assert "the show_if of question 'personal_data' reads its own answer (answers.personal_data)" in (
        problem.message
    )


def test_show_ifs_that_read_each_other_are_reported_naming_the_circle() -> None:
    text = VALID.replace(
        "        type: yes_no\n", "        type: yes_no\n        show_if: has(answers.dpia)\n"
    ).replace("        type: url\n", '        type: url\n        show_if: answers.personal_data == "yes"\n')
    problem = only(problems(text))
    assert problem.path == "gates[0].questions[0].show_if"
    assert "through other show_ifs (personal_data -> dpia -> personal_data)" in problem.message


@pytest.mark.parametrize("key", ["? [a, b]\n: 1\n", "? {a: 1}\n: 1\n"])
def test_a_list_or_mapping_as_a_key_is_reported_not_a_traceback(key: str) -> None:
    (problem,) = problems(VALID + key)
    assert problem.line == len(VALID.splitlines()) + 1
    assert problem.message == "a key must be a name, not a list or a mapping (`? [a, b]`)"


def test_a_rule_of_a_thousand_alternatives_loads() -> None:
    """A generated list of codes: the library compiles and evaluates it, and the loader's own
    reading of the rule (for comparisons no answer can satisfy) raised RecursionError."""
    rule = " || ".join(f'answers.dpia == "C{n}"' for n in range(1000))
    parse_pipeline(VALID.replace("rule: has(answers.personal_data)", f"rule: '{rule}'"))
    (problem,) = problems(
        VALID.replace("rule: has(answers.personal_data)", f"rule: '{rule} || answers.dpia == 3'")
    )
    assert "answers.dpia is never 3 (it is text)" in problem.message


def test_a_merge_key_is_reported_as_not_supported() -> None:
    """It read as a key named '<<': "'from' is required" for keys the merge gave, and
    "unknown key '<<'", with nothing saying merge keys are not supported."""
    text = """\
        version: 1
        stages: [idea, poc]
        gates:
          - &base
            id: intake
            from: idea
            to: poc
          - <<: *base
            id: second
        """
    (problem,) = problems(text)
    assert_names_the_place(
        problem,
        "gates[1].<<",
        line_of(text, "<<: *base"),
        "merge keys (<<) are not supported: repeat the keys or use an anchor for the whole value",
    )


def test_options_that_differ_only_in_case_are_reported() -> None:
    """Answers match options whatever their case: picking "YES" from the menu recorded "yes"."""
    text = VALID.replace("        type: yes_no\n", "        type: choice\n        options: [yes, no, YES]\n")
    problem = only(problems(text))
    assert_names_the_place(
        problem,
        "gates[0].questions[0].options[2]",
        line_of(text, "options: [yes"),
        "option 'YES' of question 'personal_data' in gate 'intake' differs from options[0] 'yes' only in case",
        "keep one of them",
    )
