"""What a run knows, loaded once: the fingerprint engine (rules, makers, OEM, OUI and name tables) and the
policy packs it applies, with a record of every file loaded (`refs()`, the report's `scan.knowledge`).

Every command that identifies or assesses (scan, pcap, report, demo, the service) loads its knowledge here,
so the report always names exactly the rule set and packs that made its claims, a council's own included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.fingerprint.engine import Engine
from scanner.fingerprint.rules import knowledge_digest, load_ruleset
from scanner.model import KnowledgeRef
from scanner.policy.packs import Pack, load_packs


@dataclass(slots=True)
class Knowledge:
    engine: Engine
    packs: list[Pack]

    def refs(self) -> list[KnowledgeRef]:
        """Every file loaded, in load order: the identification knowledge, then the packs applied (each pack's
        KEV data file after the pack)."""
        return [*self.engine.ruleset.knowledge, *(ref for p in self.packs for ref in p.knowledge_refs())]

    def fingerprints_sha256(self) -> str:
        """The digest over the identification knowledge (every ref but the packs): see ScanMetadata."""
        return knowledge_digest(self.engine.ruleset.knowledge)


def load_engine(rules_dirs: Sequence[Path] = ()) -> Engine:
    """The engine over the shipped fingerprints and any extra rule directories (RuleError if one is refused)."""
    return Engine(load_ruleset(extra_dirs=rules_dirs))


def load_knowledge(
    rules_dirs: Sequence[Path] = (),
    policy_dirs: Sequence[Path] = (),
    policies: Sequence[str] = (),
    engine: Engine | None = None,
) -> Knowledge:
    """The engine and the packs: every shipped pack plus `policy_dirs`, narrowed to `policies` when given
    (RuleError or PackError if a file is refused)."""
    engine = engine or load_engine(rules_dirs)
    packs = load_packs(engine.ruleset.makers, extra_dirs=policy_dirs, only=policies)
    return Knowledge(engine, packs)
