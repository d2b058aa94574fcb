"""The callflow whapp."""
