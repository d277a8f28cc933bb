"""Shepherd's own example policy pack: ten AI governance policies matching the default pipeline.

The documents live in ``knowledge/policies/`` as Markdown, one policy each, written for this
project (nothing in them is copied from the third-party corpus). Each starts with YAML front
matter that retrieval uses as metadata filters::

    ---
    title: Data Protection and Impact Assessments
    tags: [privacy]
    gates: [intake, pilot, production]
    ---

``tags`` use the same vocabulary as ``policy_refs`` / ``policy_tags`` in
``gates/defaults/pipeline.yaml`` (``POLICY_TAGS``) and ``gates`` the pipeline's gate ids
(``GATE_IDS``). Sections follow ``##`` / ``###`` headings, because chunks follow headings. The
pack deliberately has no README inside the folder: anything there would be ingested as policy.

Documents: 01 AI use (registration, approved tools, generative AI), 02 risk classification
(triggers, tiers, prohibited uses, approvals per tier), 03 data protection and DPIAs, 04 model and
system documentation, 05 evaluation and KPIs, 06 security, 07 release and monitoring, 08 handover
and operations, 09 third-party AI, 10 ethics review, fairness and human oversight.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GATE_IDS", "POLICY_DIR", "POLICY_TAGS", "policy_documents"]

POLICY_DIR: Path = Path(__file__).resolve().parent / "policies"

POLICY_TAGS: frozenset[str] = frozenset(
    {
        "ai-use",
        "risk",
        "privacy",
        "model-documentation",
        "evaluation",
        "security",
        "release",
        "monitoring",
        "operations",
        "third-party",
        "ethics",
    }
)

GATE_IDS: tuple[str, ...] = ("intake", "pilot", "production", "handover")


def policy_documents() -> list[Path]:
    """The pack's Markdown files, in their numbered order."""
    return sorted(POLICY_DIR.glob("*.md"))
