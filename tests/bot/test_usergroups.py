"""Roles held through Slack user groups: asked of Slack (the fake, through the real WebClient),
remembered for a while, and a failure said as such rather than taken for "no role"."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.emulator.webapi import FakeSlackWebAPI
from bot.usergroups import GroupRoles, MembershipUnavailable
from gates.loader import DEFAULT_PIPELINE, CompiledPipeline, load_pipeline, parse_pipeline
from tests.bot.conftest import OUTSIDER, RISK_OFFICER


def with_risk_group() -> CompiledPipeline:
    text = DEFAULT_PIPELINE.read_text(encoding="utf-8")
    risk = text.index("  risk:\n")
    text = text[:risk] + text[risk:].replace(
        "    slack_users: []\n", "    slack_users: []\n    slack_usergroup: S0RISK\n", 1
    )
    return parse_pipeline(text, "groups.yaml")


def test_members_hold_the_role_and_a_group_is_asked_once_per_ttl(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    slack_api.state.add_usergroup("S0RISK", "risk-office", [RISK_OFFICER])
    pipeline = with_risk_group()
    now = [0.0]
    roles = GroupRoles(ttl=60, clock=lambda: now[0])
    assert roles.roles_of(pipeline, RISK_OFFICER, web_client) == {"risk"}
    assert roles.roles_of(pipeline, OUTSIDER, web_client) == set()
    assert len(slack_api.calls("usergroups.users.list")) == 1
    slack_api.state.add_usergroup("S0RISK", "risk-office", [OUTSIDER])  # membership changes in Slack
    now[0] = 61
    assert roles.roles_of(pipeline, OUTSIDER, web_client) == {"risk"}
    assert roles.roles_of(pipeline, RISK_OFFICER, web_client) == set()
    assert len(slack_api.calls("usergroups.users.list")) == 2


def test_judging_a_decision_asks_again_for_someone_a_remembered_list_leaves_out(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    slack_api.state.add_usergroup("S0RISK", "risk-office", [RISK_OFFICER])
    pipeline = with_risk_group()
    roles = GroupRoles(ttl=60, clock=lambda: 0.0)
    assert roles.roles_of(pipeline, OUTSIDER, web_client) == set()
    slack_api.state.add_usergroup("S0RISK", "risk-office", [RISK_OFFICER, OUTSIDER])  # added in Slack
    assert roles.roles_of(pipeline, OUTSIDER, web_client) == set()  # App Home: the list remembered
    assert roles.roles_of(pipeline, OUTSIDER, web_client, recheck_absent=True) == {"risk"}
    # A member found in the list remembered costs no call, however many decisions they send.
    for user in (OUTSIDER, RISK_OFFICER):
        assert roles.roles_of(pipeline, user, web_client, recheck_absent=True) == {"risk"}
    assert len(slack_api.calls("usergroups.users.list")) == 2


def test_no_group_in_the_pipeline_asks_slack_nothing(
    slack_api: FakeSlackWebAPI, web_client: WebClient
) -> None:
    assert GroupRoles().roles_of(load_pipeline(), RISK_OFFICER, web_client) == set()
    assert slack_api.calls("usergroups.users.list") == []


@pytest.mark.parametrize("fault", ["server_error", "missing_scope"])
def test_slack_failing_is_said_as_such(slack_api: FakeSlackWebAPI, web_client: WebClient, fault: str) -> None:
    slack_api.state.add_usergroup("S0RISK", "risk-office", [RISK_OFFICER])
    if fault == "server_error":
        slack_api.faults.server_error("usergroups.users.list")
    else:
        slack_api.faults.fail("usergroups.users.list", "missing_scope")
    with pytest.raises(MembershipUnavailable, match="S0RISK") as raised:
        GroupRoles().roles_of(with_risk_group(), RISK_OFFICER, web_client)
    assert "could not be checked" in str(raised.value)
