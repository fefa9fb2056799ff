"""Attack families: ``evasion``, ``membership``, ``extraction``, ``poisoning`` (import the submodules)."""
