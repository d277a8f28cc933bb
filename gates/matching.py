"""Who counts for which role: a maximum assignment of people to role slots.

A review needing ``risk: 1`` and ``dpo: 1`` has two slots; each person fills at most one slot
(four eyes stay four eyes), and only a slot of a role they hold. Booking a two-role person to
the first role that fits can leave a slot no one else can fill, so the assignment is a small
bipartite matching (augmenting paths; a few dozen nodes at most).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def assign_roles(people: Sequence[tuple[str, Iterable[str]]], needs: Mapping[str, int]) -> dict[str, str]:
    """The largest assignment of ``people`` (id and the roles they hold, in priority order) to
    ``needs`` (role -> number of slots). Returns person -> role for those assigned.

    People are considered in order and an earlier person is never dropped to make room for a
    later one (they may only move to another role they hold), so the result for a prefix of
    ``people`` extends the result for a shorter prefix.
    """
    free = {role: max(count, 0) for role, count in needs.items()}
    members: dict[str, list[str]] = {role: [] for role in needs}  # role -> the people counted for it
    assigned: dict[str, str] = {}
    holds = {person: [r for r in dict.fromkeys(roles) if r in needs] for person, roles in people}

    def augment(person: str, seen: set[str]) -> bool:
        # A free slot of a role they hold first: nobody moves. Without this, every new person of
        # a 20-approver role walked the chain of all those before them (210 calls a status reply).
        for role in holds[person]:
            if free[role]:
                free[role] -= 1
                members[role].append(person)
                assigned[person] = role
                return True
        # Else a full role whose member can move to another role they hold, and so on (an
        # augmenting path); each role is entered once per search.
        for role in holds[person]:
            if role in seen:
                continue
            seen.add(role)
            for index, member in enumerate(members[role]):
                if augment(member, seen):  # ``member`` now counts for another role
                    members[role][index] = person
                    assigned[person] = role
                    return True
        return False

    for person, _ in people:
        if person not in assigned:
            augment(person, set())
    return assigned


def unmet(people: Sequence[tuple[str, Iterable[str]]], needs: Mapping[str, int]) -> dict[str, int]:
    """Slots per role that ``people`` cannot fill at once (roles fully covered left out)."""
    counts = dict(needs)
    for role in assign_roles(people, needs).values():
        counts[role] -= 1
    return {role: n for role, n in counts.items() if n > 0}
