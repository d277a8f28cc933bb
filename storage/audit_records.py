"""The tables the evidence pack reads, checked against the audit chain (``storage.audit.verify``).

The chain proves only itself: decisions, answers and links are plain rows, and a change made to
them in the database would otherwise show in the pack as what a review was decided on. Once
the chain is proven, ``verify`` checks:

- every decision against the ``decision.recorded`` entry of its review and approver: the
  decision, the role it counted for, the reason and the time (``gates.evidence``), and the
  review's roles the approver held (``decisions.roles``, which decide what the approval may count
  for) where the entry records them (entries written before they were recorded do not). An
  entry without a decision and a decision without an entry are reported too.
- every review against its ``review.submitted`` entry: its evidence hash is the one recorded,
  and, given the pipeline, its answers as submitted and its links still give it (recomputed as
  ``submit`` computes it); its submitter, risk tier, required approvals and exception
  justification are those recorded; and its status is the one the entries that close a review
  give (a rejection or a request for changes, ``stage.advanced`` for an approval,
  ``review.withdrawn``), or open without one. The pack shows them from the row.
- every initiative's stage, once an approval moved it: the one its last ``stage.advanced`` entry
  moved it to; one never moved on, the stage its ``initiative.registered`` entry records it
  was registered in (entries written before they recorded it are left alone: the pipeline of
  today may have other stages than the one it was registered under).
- every initiative's owner and sponsor: those its ``initiative.registered`` entry names, the
  sponsor as its last ``initiative.sponsor_changed`` entry changed it (nothing else changes
  either). They decide who may submit it, who may not approve it, and the pack shows them.
- every registered initiative's status: retired once an ``initiative.retired`` entry says so
  (nothing brings one back); else on hold after an ``initiative.held`` entry not followed by an
  ``initiative.resumed`` one; else under review while a review the log records submitted is
  not closed by it, active otherwise. Every one of these entries has been written since the
  first release (only the ``review.withdrawn`` of a retirement came later, and a retirement
  settles the status alone), so an old log gives no false alarm.

Memory grows with the number of decisions, reviews and initiatives by one small tuple each (collected while
the chain is walked); decisions are read in pages, and reviews one page of initiatives at a time
with those initiatives' answers and links.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.orm import Session

from gates.evidence import decision_differences, evidence_holds
from gates.loader import CompiledPipeline
from storage.tables import answer_versions, decisions, evidence_links, initiatives, reviews

DECIDED = "decision.recorded"
SUBMITTED = "review.submitted"
WITHDRAWN = "review.withdrawn"
ADVANCED = "stage.advanced"
RETIRED = "initiative.retired"
REGISTERED = "initiative.registered"
SPONSOR_CHANGED = "initiative.sponsor_changed"
HELD = "initiative.held"
RESUMED = "initiative.resumed"
CLOSING_DECISIONS = {"reject": "rejected", "request_changes": "changes_requested"}
"""The decisions that close a review at once, and the status they close it with."""
LISTED = 50
"""Disagreements named in the report; more are counted."""


@dataclass(frozen=True, slots=True)
class _Decided:
    seq: int
    at: datetime
    target: str
    decision: Any
    role: Any
    reason: Any
    roles: Any  # None for an entry written before they were recorded


@dataclass(frozen=True, slots=True)
class _Submitted:
    seq: int
    target: str
    evidence_hash: Any
    pipeline_version: Any
    submitted_by: Any
    tier: Any
    requirements: Any
    exception_reason: Any


@dataclass
class Disagreements:
    """What ``RecordsCheck.check`` found, with how much it checked."""

    listed: list[str] = field(default_factory=list)
    total: int = 0
    decisions: int = 0
    reviews: int = 0
    recomputed: bool = False

    def add(self, text: str) -> None:
        self.total += 1
        if len(self.listed) < LISTED:
            self.listed.append(text)


class RecordsCheck:
    """Fed every entry of the proven chain (``note``), then checks the tables (``check``)."""

    def __init__(self) -> None:
        self._decided: dict[tuple[Any, str], _Decided] = {}
        self._submitted: dict[Any, _Submitted] = {}
        self._closed: dict[Any, str] = {}  # review -> the status its closing entry gives
        self._retired: dict[str, int] = {}  # initiative ref -> the seq of its retirement
        self._moved: dict[str, tuple[Any, int]] = {}  # ref -> (stage it last moved to, seq)
        # ref -> {"owner" / "sponsor": (who the log says it is, the seq saying so)}
        self._people: dict[str, dict[str, tuple[Any, int]]] = defaultdict(dict)
        self._registered_in: dict[str, tuple[Any, int]] = {}  # ref -> (stage, seq)
        self._registered: set[str] = set()
        self._held: dict[str, int] = {}  # ref -> the seq of a hold not resumed since
        self._open: dict[str, dict[Any, int]] = defaultdict(dict)  # ref -> {open review: seq submitted}
        self._found = Disagreements()

    def note(self, row: RowMapping) -> None:
        action = row["action"]
        if action == RETIRED:
            self._retired[row["target"]] = row["seq"]
            return
        if action == HELD:
            self._held[row["target"]] = row["seq"]
            return
        if action == RESUMED:
            self._held.pop(row["target"], None)
            return
        if action not in (DECIDED, SUBMITTED, WITHDRAWN, ADVANCED, REGISTERED, SPONSOR_CHANGED):
            return
        detail = json.loads(row["payload"])
        if action in (REGISTERED, SPONSOR_CHANGED):
            if action == REGISTERED:
                self._registered.add(row["target"])
            people = self._people[row["target"]]
            if action == REGISTERED and "stage" in detail:
                self._registered_in[row["target"]] = (detail["stage"], row["seq"])
            for role in ("owner", "sponsor"):
                if role in detail:  # a sponsor change names only the sponsor
                    people[role] = (detail[role], row["seq"])
            return
        review = detail.get("review")
        if action == SUBMITTED:
            self._open[row["target"]][review] = row["seq"]
            self._submitted[review] = _Submitted(
                row["seq"],
                row["target"],
                detail.get("evidence_hash"),
                detail.get("pipeline_version"),
                row["actor_id"],
                detail.get("tier"),
                _requirements(detail.get("requirements")),
                detail.get("exception_reason"),
            )
            return
        if action == WITHDRAWN:
            self._closed[review] = "withdrawn"
            self._open[row["target"]].pop(review, None)
            return
        if action == ADVANCED:
            self._closed[review] = "approved"
            self._open[row["target"]].pop(review, None)
            self._moved[row["target"]] = (detail.get("to"), row["seq"])
            return
        if detail.get("decision") in CLOSING_DECISIONS:
            self._closed.setdefault(review, CLOSING_DECISIONS[detail["decision"]])
            self._open[row["target"]].pop(review, None)
        key = (review, row["actor_id"])
        earlier = self._decided.get(key)
        if earlier is not None:
            self._found.add(
                f"Audit entries {earlier.seq} and {row['seq']} both record a decision of {row['actor_id']} "
                f"on review {review} ({row['target']}), who can decide only once."
            )
            return
        self._decided[key] = _Decided(
            row["seq"],
            row["at"],
            row["target"],
            detail.get("decision"),
            detail.get("role"),
            detail.get("reason"),
            detail.get("roles"),
        )

    def check(self, session: Session, pipeline: CompiledPipeline | None, batch: int) -> Disagreements:
        self._check_decisions(session, batch)
        self._check_reviews(session, pipeline, max(1, batch // 10))
        self._check_initiatives(session, batch)
        return self._found

    def _check_initiatives(self, session: Session, batch: int) -> None:
        """Each initiative's stage against the approval that last moved it (the pack and Slack
        say it passed every gate before it), its owner and sponsor against the entries naming
        them."""
        after = 0
        while True:
            page = session.execute(
                select(
                    initiatives.c.id,
                    initiatives.c.ref,
                    initiatives.c.stage,
                    initiatives.c.owner_id,
                    initiatives.c.sponsor_id,
                    initiatives.c.status,
                )
                .where(initiatives.c.id > after)
                .order_by(initiatives.c.id)
                .limit(batch)
            ).all()
            for _id, ref, stage, owner, sponsor, status in page:
                self._check_status(ref, status)
                people = self._people.pop(ref, {})
                for role, stored in (("owner", owner), ("sponsor", sponsor)):
                    logged = people.get(role)
                    if logged is not None and stored != logged[0]:
                        self._found.add(
                            f"Initiative {ref} has the {role} {_said(stored)}, but the audit log records "
                            f"{_said(logged[0])} (entry {logged[1]}): it was changed in the database."
                        )
                moved = self._moved.get(ref)
                registered_in = self._registered_in.pop(ref, None)
                if moved is None and registered_in is not None and stage != registered_in[0]:
                    self._found.add(
                        f"Initiative {ref} is in stage {_said(stage)}, but no approval moved it on since "
                        f"the audit log records it registered in {_said(registered_in[0])} "
                        f"({REGISTERED}, entry {registered_in[1]}): it was changed in the database."
                    )
                if moved is not None and stage != moved[0]:
                    self._found.add(
                        f"Initiative {ref} is in stage {_said(stage)}, but the audit log records it moved "
                        f"to {_said(moved[0])} ({ADVANCED}, entry {moved[1]}): it was changed in the database."
                    )
            if len(page) < batch:
                break
            after = page[-1][0]

    def _check_status(self, ref: str, status: Any) -> None:
        """Its status against the entries that change it: the card, the App Home, the scheduler
        and the pack go by it (a retired initiative set back to active takes answers, submissions
        and reminders again)."""
        if ref not in self._registered:  # the log knows nothing of it (the owner check says so too)
            return
        open_reviews = self._open.pop(ref, {})
        if ref in self._retired:
            logged, why = "retired", f"({RETIRED}, entry {self._retired[ref]})"
        elif ref in self._held:
            logged, why = "on_hold", f"({HELD}, entry {self._held[ref]}, not resumed since)"
        elif open_reviews:
            review, seq = min(open_reviews.items(), key=lambda item: item[1])
            logged, why = (
                "in_review",
                f"(review {review} submitted, {SUBMITTED} entry {seq}, not closed since)",
            )
        else:
            logged, why = "active", "(neither retired, on hold nor under review)"
        if status != logged:
            self._found.add(
                f"Initiative {ref} has the status {_said(status)}, but the audit log records it "
                f"{_said(logged)} {why}: it was changed in the database."
            )

    def _check_decisions(self, session: Session, batch: int) -> None:
        found = self._found
        after = 0
        while True:
            page = session.execute(_DECISIONS.where(decisions.c.id > after).limit(batch)).mappings().all()
            for row in page:
                found.decisions += 1
                who = f"The decision of {row['approver_id']} on review {row['review_id']} ({row['ref']})"
                entry = self._decided.pop((row["review_id"], row["approver_id"]), None)
                if entry is None:
                    found.add(
                        f"{who}, {_said(row['kind'])}, has no {DECIDED} entry in the audit log: it was "
                        "added in the database, not through Shepherd."
                    )
                    continue
                recorded = {"decision": entry.decision, "role": entry.role, "reason": entry.reason}
                if entry.roles is not None:
                    recorded["roles"] = entry.roles
                roles = (row["roles"] or "").split()
                differs = decision_differences(
                    row["kind"], row["role"], row["reason"], row["decided_at"], recorded, entry.at, roles
                )
                if differs:
                    stored = {"decision": row["kind"], "role": row["role"], "reason": row["reason"]}
                    stored["at"], stored["roles"] = row["decided_at"], sorted(roles)
                    found.add(
                        f"{who} says {_fields({name: stored[name] for name in differs})}, but its audit "
                        f"entry {entry.seq} records {_fields(differs)}: it was changed in the database."
                    )
            if len(page) < batch:
                break
            after = page[-1]["id"]
        for (review, approver), entry in sorted(self._decided.items(), key=lambda item: item[1].seq):
            found.add(
                f"Audit entry {entry.seq} records a decision of {approver}, {_said(entry.decision)}, on "
                f"review {review} ({entry.target}), which the decisions table does not hold: it was "
                "deleted in the database."
            )
        self._decided.clear()

    def _check_reviews(self, session: Session, pipeline: CompiledPipeline | None, batch: int) -> None:
        found = self._found
        found.recomputed = pipeline is not None
        after = 0
        while True:
            owners = list(
                session.scalars(
                    select(reviews.c.initiative_id)
                    .distinct()
                    .where(reviews.c.initiative_id > after)
                    .order_by(reviews.c.initiative_id)
                    .limit(batch)
                )
            )
            if not owners:
                break
            after = owners[-1]
            answers: dict[int, list[tuple[str, Any, datetime]]] = defaultdict(list)
            links: dict[int, list[tuple[str, str, datetime]]] = defaultdict(list)
            # ``all()``: fetched at once; a driver call per row was a third of the profiled time on PostgreSQL.
            if pipeline is not None:
                for answer in session.execute(
                    _ANSWERS.where(answer_versions.c.initiative_id.in_(owners))
                ).all():
                    answers[answer.initiative_id].append(
                        (answer.question_id, answer.value, answer.answered_at)
                    )
                for link in session.execute(_LINKS.where(evidence_links.c.initiative_id.in_(owners))).all():
                    links[link.initiative_id].append((link.url, link.title, link.added_at))
            for row in session.execute(_REVIEWS.where(reviews.c.initiative_id.in_(owners))).mappings().all():
                found.reviews += 1
                self._check_review(row, pipeline, answers[row["initiative_id"]], links[row["initiative_id"]])
        for review, entry in sorted(self._submitted.items(), key=lambda item: item[1].seq):
            found.add(
                f"Audit entry {entry.seq} records the submission of review {review} ({entry.target}), "
                "which the reviews table does not hold: it was deleted in the database."
            )
        self._submitted.clear()

    def _check_review(
        self,
        row: RowMapping,
        pipeline: CompiledPipeline | None,
        versions: list[tuple[str, Any, datetime]],
        links: list[tuple[str, str, datetime]],
    ) -> None:
        found = self._found
        what = f"Review {row['id']} ({row['ref']}, {row['gate_id']} gate)"
        entry = self._submitted.pop(row["id"], None)
        closed = self._closed.pop(row["id"], "open")
        if entry is None:
            found.add(f"{what} has no {SUBMITTED} entry in the audit log: it was added in the database.")
            recorded, decided_on = row["evidence_hash"], row["pipeline_version"]
        else:
            recorded = entry.evidence_hash
            decided_on = entry.pipeline_version or row["pipeline_version"]
            if row["evidence_hash"] != recorded:
                found.add(
                    f"{what} has the evidence hash {_short(row['evidence_hash'])}, but its audit entry "
                    f"{entry.seq} recorded {_short(recorded)}: it was changed in the database."
                )
            if closed == "open" and self._retired.get(entry.target, 0) > entry.seq:
                # Retired under review: written before review.withdrawn was recorded with it.
                closed = "withdrawn"
            # What the pack shows of the review beside its answers: its outcome and its terms.
            stored = {
                "status": row["status"],
                "submitted_by": row["submitted_by"],
                "tier": row["tier"],
                "requirements": _requirements(
                    [(need.get("role"), need.get("min")) for need in row["requirements"] or []]
                ),
                "exception_reason": row["exception_reason"],
            }
            logged = {
                "status": closed,
                "submitted_by": entry.submitted_by,
                "tier": entry.tier,
                "requirements": entry.requirements,
                "exception_reason": entry.exception_reason,
            }
            differs = [name for name in stored if stored[name] != logged[name]]
            if differs:
                found.add(
                    f"{what} says {_fields({name: stored[name] for name in differs})}, but the audit log "
                    f"records {_fields({name: logged[name] for name in differs})}: it was changed in "
                    "the database."
                )
        if pipeline is None:
            return
        submitted_at = row["submitted_at"]
        # As ``SqlAnswerRepository.as_of`` reads them (versions ascend): each question's highest
        # version given by then, and the links added by then (``evidence_as_submitted``).
        as_submitted = {qid: value for qid, value, at in versions if at <= submitted_at}
        then = [(url, title) for url, title, at in links if at <= submitted_at]
        if not evidence_holds(pipeline, decided_on, recorded, as_submitted, then):
            other = (
                f" (It was submitted on pipeline version {decided_on}; this one is {pipeline.version}.)"
                if decided_on != pipeline.version
                else ""
            )
            found.add(
                f"{what}: its answers as submitted and its links no longer give the evidence hash "
                f"{_short(recorded)} it was decided on: they were changed in the database after "
                f"it was submitted.{other}"
            )


_DECISIONS = (
    select(
        decisions.c.id,
        decisions.c.review_id,
        decisions.c.approver_id,
        decisions.c.kind,
        decisions.c.role,
        decisions.c.roles,
        decisions.c.reason,
        decisions.c.decided_at,
        initiatives.c.ref,
    )
    .join(reviews, reviews.c.id == decisions.c.review_id)
    .join(initiatives, initiatives.c.id == reviews.c.initiative_id)
    .order_by(decisions.c.id)
)
_REVIEWS = (
    select(
        reviews.c.id,
        reviews.c.initiative_id,
        reviews.c.gate_id,
        reviews.c.submitted_at,
        reviews.c.evidence_hash,
        reviews.c.pipeline_version,
        reviews.c.status,
        reviews.c.submitted_by,
        reviews.c.tier,
        reviews.c.requirements,
        reviews.c.exception_reason,
        initiatives.c.ref,
    )
    .join(initiatives, initiatives.c.id == reviews.c.initiative_id)
    .order_by(reviews.c.id)
)
_ANSWERS = select(
    answer_versions.c.initiative_id,
    answer_versions.c.question_id,
    answer_versions.c.value,
    answer_versions.c.answered_at,
).order_by(answer_versions.c.initiative_id, answer_versions.c.version)
_LINKS = select(
    evidence_links.c.initiative_id, evidence_links.c.url, evidence_links.c.title, evidence_links.c.added_at
)


def _requirements(needs: Any) -> str:
    """Required approvals as one text, ``[[role, min], ...]`` (as an audit entry records them)."""
    return ", ".join(f"{need[1]} x {need[0]}" for need in needs or []) or "none"


def _fields(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {_said(value)}" for name, value in values.items())


def _said(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return json.dumps(" ".join(map(str, value)) or "none")
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat(timespec="microseconds")
    text = " ".join(str(value).split())
    return json.dumps(text if len(text) <= 80 else text[:79] + "…", ensure_ascii=False)


def _short(digest: Any) -> str:
    return f"{str(digest)[:12]}…" if digest else "none"
