"""Names of the defenses a suite may list (pure data, read at collection)."""

DEFENSES = ("none",)
