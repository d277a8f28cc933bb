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
    slots = [(role, n) for role, count in needs.items() for n in range(max(count, 0))]
    owner: dict[int, str] = {}  # slot index -> person
    holds = {person: [r for r in dict.fromkeys(roles) if r in needs] for person, roles in people}

    def augment(person: str, seen: set[int]) -> bool:
        for index, (role, _) in enumerate(slots):
            if role not in holds[person] or index in seen:
                continue
            seen.add(index)
            if index not in owner or augment(owner[index], seen):
                owner[index] = person
                return True
        return False

    for person, _ in people:
        augment(person, set())
    return {person: slots[index][0] for index, person in owner.items()}


def unmet(people: Sequence[tuple[str, Iterable[str]]], needs: Mapping[str, int]) -> dict[str, int]:
    """Slots per role that ``people`` cannot fill at once (roles fully covered left out)."""
    counts = dict(needs)
    for role in assign_roles(people, needs).values():
        counts[role] -= 1
    return {role: n for role, n in counts.items() if n > 0}
