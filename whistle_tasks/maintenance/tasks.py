"""Tasks of the maintenance whapp (added by their issue)."""
