"""Every error the gates domain raises, as one tree.

    ShepherdError                      base of everything Shepherd raises on purpose
    ├── PipelineError                  a pipeline file is unusable; carries every Problem found
    └── GateError                      a request the domain refuses; str() is safe to show a user
        ├── NotFound
        │   ├── UnknownInitiative      no initiative with that ref
        │   ├── UnknownGate            the pipeline has no such gate
        │   ├── UnknownQuestion        the gate has no such question
        │   ├── UnknownRole            the pipeline defines no such role
        │   └── UnknownReview          no review with that id
        ├── InvalidAnswer              an answer does not fit its question (type, option, range)
        ├── NotReady                   blocking criteria unmet or required answers missing
        ├── InvalidTransition          the initiative's status does not allow the action
        │   └── GateDecided            answers to a gate the initiative has already moved past
        ├── ReviewAlreadyOpen          a review for this gate is already open
        └── DecisionRefused
            ├── NotAnApprover          the user holds no role the review still needs
            ├── SelfApproval           the submitter or the owner tried to decide
            ├── ReasonRequired         reject / request changes without a reason
            ├── ReviewClosed           the review is no longer open
            └── AlreadyDecided         the user already gave a different decision
        └── ConcurrentUpdate           lost a race to another change; nothing recorded

Listeners catch ``GateError`` and show ``str(error)`` to the person; ``PipelineError`` is for the
CLI and for start-up, which print each problem on its own line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class ShepherdError(Exception):
    """Base of every error Shepherd raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline file, located as precisely as we can.

    Attributes:
        file: the file name, as given.
        path: where in the document, for example ``gates[2].questions[4].required_if``.
        message: what is wrong, in words a governance lead understands.
        line: 1-based line in the file, when known.
    """

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PipelineError(ShepherdError):
    """The pipeline file cannot be used; ``problems`` lists everything found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class GateError(ShepherdError):
    """A request the domain refuses. The message is written for the person who asked."""


class NotFound(GateError):
    """Something named in the request does not exist."""


class UnknownInitiative(NotFound):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"There is no initiative {ref}.")


class UnknownGate(NotFound):
    def __init__(self, gate_id: str) -> None:
        self.gate_id = gate_id
        super().__init__(f"The pipeline has no gate called '{gate_id}'.")


class UnknownQuestion(NotFound):
    def __init__(self, gate_id: str, question_id: str) -> None:
        self.gate_id = gate_id
        self.question_id = question_id
        super().__init__(f"The {gate_id} gate has no question called '{question_id}'.")


class UnknownRole(NotFound):
    def __init__(self, role: str, known: list[str] | None = None) -> None:
        self.role = role
        hint = f" Known roles: {', '.join(known)}." if known else ""
        super().__init__(f"The pipeline defines no role called '{role}'.{hint}")


class UnknownReview(NotFound):
    def __init__(self, review_id: object) -> None:
        self.review_id = review_id
        super().__init__(f"There is no review {review_id}.")


class InvalidAnswer(GateError):
    """An answer that does not fit its question; nothing is recorded. ``problems`` holds every
    answer of the batch that did not fit, by question id (this one first)."""

    def __init__(self, question_id: str, message: str, problems: Mapping[str, str] | None = None) -> None:
        self.question_id = question_id
        self.reason = message
        self.problems: dict[str, str] = {question_id: message, **(problems or {})}
        super().__init__(f"{question_id}: {message}")


class NotReady(GateError):
    """The gate cannot be submitted yet; ``reasons`` lists what is missing."""

    def __init__(self, gate_id: str, reasons: list[str]) -> None:
        self.gate_id = gate_id
        self.reasons = reasons
        listed = "; ".join(reasons)
        super().__init__(f"The {gate_id} gate is not ready for review: {listed}")


class InvalidTransition(GateError):
    """The initiative's current status does not allow the action."""


class GateDecided(InvalidTransition):
    """Answers (or an evidence link) for a gate the initiative has already moved past: that
    gate was decided on its answers, which later gates' rules may read (the pilot's DPIA is
    required because the intake said personal data), so they can no longer change. A form
    opened before the decision and saved after it is the usual way here."""

    def __init__(self, ref: str, gate_id: str, stage: str) -> None:
        self.ref = ref
        self.gate_id = gate_id
        self.stage = stage
        super().__init__(
            f"The {gate_id} gate of {ref} has been decided ({ref} is now in the {stage} stage), "
            "so its answers can no longer change."
        )


class NotPermitted(GateError):
    """The person may not do this to this initiative (they are neither its owner nor a steward)."""


class ReviewAlreadyOpen(GateError):
    def __init__(self, ref: str, gate_id: str) -> None:
        super().__init__(f"{ref} already has an open review for the {gate_id} gate.")


class DecisionRefused(GateError):
    """A decision that cannot be recorded."""


class NotAnApprover(DecisionRefused):
    pass


class SelfApproval(DecisionRefused):
    pass


class ReasonRequired(DecisionRefused):
    def __init__(self) -> None:
        super().__init__("A reason is required to reject or to request changes.")


class ReviewClosed(DecisionRefused):
    pass


class AlreadyDecided(DecisionRefused):
    pass


class ConcurrentUpdate(GateError):
    """Someone else changed the same thing at the same moment; nothing of ours was recorded.

    Use cases retry once on this; if it persists the person is asked to try again.
    """

    def __init__(self, what: str = "This was changed by someone else at the same moment") -> None:
        super().__init__(f"{what}; please try again.")
