"""LetItCode core library."""
