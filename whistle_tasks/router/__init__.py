"""The router whapp."""
