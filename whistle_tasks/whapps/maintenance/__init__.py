"""The maintenance whapp."""
