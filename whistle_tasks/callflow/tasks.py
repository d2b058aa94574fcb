"""Tasks of the callflow whapp (added by their issue)."""
