"""Policy packs (policies/*.yaml) -> Findings for a Device."""
