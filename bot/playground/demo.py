"""The demo workspace the playground starts with: people with governance roles and two channels."""

from __future__ import annotations

from dataclasses import dataclass

from bot.emulator.state import SlackState

REGISTRY_CHANNEL = "ai-initiatives"


@dataclass(frozen=True)
class Person:
    """Someone a visitor can act as; ``role`` is a pipeline role id (None: no approval role)."""

    id: str
    name: str
    real_name: str
    title: str
    role: str | None = None
    role_admin: bool = False


PEOPLE: tuple[Person, ...] = (
    Person("U0PGOWNER1", "olivia", "Olivia Owner", "Initiative owner"),
    Person("U0PGSPONS1", "sam", "Sam Sponsor", "Business sponsor", "sponsor"),
    Person("U0PGRISK01", "rafael", "Rafael Risk", "Risk officer", "risk"),
    Person("U0PGPRIV01", "priya", "Priya Privacy", "Privacy officer", "privacy"),
    Person("U0PGARCH01", "ari", "Ari Architect", "Architect", "architecture"),
    Person("U0PGOPS001", "oskar", "Oskar Operations", "Operations owner", "operations"),
    Person("U0PGGOV001", "gwen", "Gwen Governance", "Governance lead (role admin)", role_admin=True),
)


def seed_people(state: SlackState, people: tuple[Person, ...] = PEOPLE) -> None:
    """Add the demo people, the registry channel and #general to the emulator's workspace."""
    for person in people:
        state.add_user(
            person.id,
            person.name,
            person.real_name,
            email=f"{person.name}@shepherd-demo.example",
            is_admin=person.role_admin,
        )
    state.add_channel(REGISTRY_CHANNEL)
    state.add_channel("general")


def person(user_id: str, people: tuple[Person, ...] = PEOPLE) -> Person | None:
    """The demo person with ``user_id``, if any."""
    return next((p for p in people if p.id == user_id), None)
