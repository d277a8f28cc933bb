"""App Home paged through Slack: every page opens, counts are true, recent decisions are recent.

The tab is opened and paged the way Slack does it (an ``app_home_opened`` event, then signed
``block_actions`` from the published view); the fake Slack refuses any view Slack would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import ids
from bot.emulator import payloads
from gates import usecases
from gates.lifecycle import DecisionKind
from tests.bot.scenario import REPO, Workspace, register_low_risk, workspace_of

OWNER = "U0OWNER01"
RECENT = "*Recent decisions on my initiatives*"
SPONSOR = "U0SPONS01"
ADMIN = "U0ADMIN01"


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Shepherd on SQLite with an owner, a sponsor and a role admin."""
    with workspace_of({OWNER: "olivia", SPONSOR: "sam", ADMIN: "ada"}, tmp_path / "data") as ws:
        usecases.set_role_holders(
            ws.services.pipeline, ws.services.uow(), "sponsor", [SPONSOR], ADMIN, ws.clock()
        )
        yield ws


def _intake_answers() -> dict[str, Any]:
    return yaml.safe_load((REPO / "examples" / "answers" / "intake-low-risk.yaml").read_text())


def _register(ws: Workspace, count: int) -> list[str]:
    return [register_low_risk(ws, OWNER, SPONSOR, name=f"Initiative {n}") for n in range(count)]


def _published(ws: Workspace, before: int) -> dict[str, Any]:
    """The view of the publish after the first ``before``, which Slack must have accepted."""
    ws.api.log.wait_for("views.publish", count=before + 1, timeout=20, ok=None)  # refused ones too
    call = ws.api.calls("views.publish")[before]
    assert call.ok, f"Slack refused the Home tab: {call.response}"
    return call.response["view"]


def _open_home(ws: Workspace, user: str) -> dict[str, Any]:
    before = len(ws.api.calls("views.publish"))
    event = payloads.app_home_opened_event(user, channel_id=ws.dm_with(user))
    assert ws.client.send_event(payloads.event_callback(event)).status == 200
    return _published(ws, before)


def _nav_buttons(view: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Button label -> (its block_id, the button), for the Previous / Next buttons."""
    return {
        element["text"]["text"]: (block["block_id"], element)
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == ids.ACTION_HOME_PAGE
    }


def _click_page(ws: Workspace, user: str, view: dict[str, Any], label: str) -> dict[str, Any]:
    """Click Previous or Next on the Home tab; returns the tab published in answer."""
    block_id, _ = _nav_buttons(view)[label]
    payload = payloads.block_actions_in_view(view, ids.ACTION_HOME_PAGE, user_id=user, block_id=block_id)
    before = len(ws.api.calls("views.publish"))
    assert ws.client.send(payload).status == 200
    return _published(ws, before)


def _page_line(view: dict[str, Any]) -> str:
    [line] = [
        block["elements"][0]["text"]
        for block in view["blocks"]
        if block["type"] == "context" and block["elements"][0]["text"].startswith("Page ")
    ]
    return line


def _section(view: dict[str, Any], title: str) -> list[str]:
    """The texts of the blocks under the section headed ``title``, up to the next divider."""
    start = next(n for n, block in enumerate(view["blocks"]) if block.get("text", {}).get("text") == title)
    texts = []
    for block in view["blocks"][start + 1 :]:
        if block["type"] == "divider":
            break
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts += [element["text"] for element in block["elements"]]
    return texts


def test_a_middle_page_of_app_home_opens_and_pages_both_ways(workspace: Workspace) -> None:
    for ref in _register(workspace, 25):
        usecases.submit(workspace.services.pipeline, workspace.services.uow(), ref, OWNER, workspace.clock())
    first = _open_home(workspace, SPONSOR)
    assert _page_line(first) == "Page 1 of 3" and set(_nav_buttons(first)) == {"Next"}

    middle = _click_page(workspace, SPONSOR, first, "Next")
    assert _page_line(middle) == "Page 2 of 3"
    assert {label: button["value"] for label, (_, button) in _nav_buttons(middle).items()} == {
        "Previous": "0",
        "Next": "2",
    }
    assert "AI-0011" in str(middle) and "AI-0001" not in str(middle)

    assert _page_line(_click_page(workspace, SPONSOR, middle, "Next")) == "Page 3 of 3"
    assert _page_line(_click_page(workspace, SPONSOR, middle, "Previous")) == "Page 1 of 3"


def test_app_home_of_an_owner_of_more_than_100_counts_them_all_and_reaches_every_one(
    workspace: Workspace,
) -> None:
    refs = _register(workspace, 105)
    view = _open_home(workspace, OWNER)
    assert "*My initiatives* (105)" in str(view) and _page_line(view) == "Page 1 of 11"
    shown = []
    while True:
        listed = _section(view, "*My initiatives* (105)")
        shown += [ref for text in listed for ref in refs if f"· {ref}\n" in text]
        if "Next" not in _nav_buttons(view):
            break
        view = _click_page(workspace, OWNER, view, "Next")
    assert _page_line(view) == "Page 11 of 11"
    assert shown == refs


def test_recent_decisions_are_the_latest_across_all_of_my_initiatives(workspace: Workspace) -> None:
    services = workspace.services
    refs = _register(workspace, 25)
    # The oldest initiative first, then the 12 newest: only the 10 latest decisions show.
    decided = [refs[0], *refs[13:]]
    for ref in decided:
        review = usecases.submit(services.pipeline, services.uow(), ref, OWNER, workspace.clock())
        workspace.clock.advance(minutes=5)
        usecases.decide(
            services.pipeline,
            services.uow(),
            review.id,
            SPONSOR,
            DecisionKind.APPROVE,
            None,
            workspace.clock(),
        )
    # Withdrawn before anyone decided: no decision to show.
    usecases.submit(services.pipeline, services.uow(), refs[1], OWNER, workspace.clock())
    usecases.withdraw(services.uow(), refs[1], OWNER, workspace.clock())

    recent = _section(_open_home(workspace, OWNER), RECENT)
    listed = [ref for text in recent for ref in refs if f"· {ref} ·" in text]
    assert listed == list(reversed(decided))[:10]


def test_app_home_stays_on_its_page_when_a_decision_refreshes_it_and_when_it_is_opened_again(
    workspace: Workspace,
) -> None:
    """An approver working through page 2 of the approvals waiting approves one there: the tab,
    published again so that no stale button stays live, still shows page 2, as it does when they
    come back to it."""
    for ref in _register(workspace, 25):
        usecases.submit(workspace.services.pipeline, workspace.services.uow(), ref, OWNER, workspace.clock())
    second = _click_page(workspace, SPONSOR, _open_home(workspace, SPONSOR), "Next")
    assert _page_line(second) == "Page 2 of 3"
    [(block_id, approve), *_] = [
        (block["block_id"], element)
        for block in second["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") == ids.ACTION_APPROVE
    ]
    decided = int(approve["value"])
    before = len(workspace.api.calls("views.publish"))
    click = payloads.block_actions_in_view(second, ids.ACTION_APPROVE, user_id=SPONSOR, block_id=block_id)
    assert workspace.client.send(click).status == 200
    workspace.inbox.drain()
    workspace.deliver()  # the decision's notifications, among them the refresh of this tab

    refreshed = _published(workspace, len(workspace.api.calls("views.publish")) - 1)
    assert len(workspace.api.calls("views.publish")) > before
    assert _page_line(refreshed) == "Page 2 of 3"
    assert f'"value": "{decided}"' not in json.dumps(refreshed)  # its button is gone
    assert _page_line(_open_home(workspace, SPONSOR)) == "Page 2 of 3"
    # Paging back is remembered too.
    assert _page_line(_click_page(workspace, SPONSOR, refreshed, "Previous")) == "Page 1 of 3"
    assert _page_line(_open_home(workspace, SPONSOR)) == "Page 1 of 3"


def test_app_home_of_a_sponsor_lists_the_initiatives_they_sponsor_and_their_decisions(
    workspace: Workspace,
) -> None:
    """A sponsor (who often registers an initiative on its owner's behalf) finds it on their
    Home tab, marked as sponsored, with its decisions, as `/shepherd status` lists it: not "You
    own no initiatives yet. Register one", which invites a second registration."""
    services = workspace.services
    ref = usecases.register(
        services.pipeline,
        services.uow(),
        name="Spare-parts demand forecast",
        owner_id=OWNER,
        sponsor_id=SPONSOR,
        answers={**_intake_answers(), "initiative_owner": OWNER, "business_sponsor": SPONSOR},
        actor_id=SPONSOR,  # registered by its sponsor, on its owner's behalf
        now=workspace.clock(),
    ).ref  # type: ignore[union-attr]
    review = usecases.submit(services.pipeline, services.uow(), ref, OWNER, workspace.clock())
    workspace.clock.advance(minutes=5)
    usecases.decide(
        services.pipeline, services.uow(), review.id, SPONSOR, DecisionKind.APPROVE, None, workspace.clock()
    )

    view = _open_home(workspace, SPONSOR)
    mine = _section(view, "*My initiatives* (1)")
    assert len(mine) == 1 and f"· {ref}\n" in mine[0], mine
    assert f"you sponsor it for <@{OWNER}>" in mine[0]
    assert "You own no initiatives" not in json.dumps(view)
    recent = _section(view, RECENT)
    assert any(f"· {ref} ·" in text for text in recent), recent
    # The owner's own tab does not call them a sponsor.
    owner_view = _open_home(workspace, OWNER)
    assert "you sponsor it" not in json.dumps(owner_view)


def test_app_home_of_an_approver_does_not_say_there_are_no_decisions_after_they_decided(
    workspace: Workspace,
) -> None:
    """The sponsor role's holder approves someone else's initiative: their tab's recent
    decisions are those on their own initiatives, and say so, instead of "No decisions yet."
    right under the approval they just gave."""
    services = workspace.services
    [ref] = _register(workspace, 1)
    review = usecases.submit(services.pipeline, services.uow(), ref, OWNER, workspace.clock())
    usecases.decide(
        services.pipeline, services.uow(), review.id, SPONSOR, DecisionKind.APPROVE, None, workspace.clock()
    )
    shown = json.dumps(_open_home(workspace, SPONSOR))
    assert "No decisions yet." not in shown
    assert "No decisions on your initiatives yet." in shown
    # Its owner's tab lists it under the same heading.
    assert any(f"· {ref} ·" in text for text in _section(_open_home(workspace, OWNER), RECENT))
