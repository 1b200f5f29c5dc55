"""Fingerprinting: rule files (data) -> compiled RuleSet -> Identity for a host's Evidence."""
