"""Smoke bench of the simulation harness: a saturating accumulator."""
