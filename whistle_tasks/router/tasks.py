"""Tasks of the router whapp (added by their issue)."""
