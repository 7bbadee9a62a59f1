"""Dramatiq: the broker set-up and the actors, each a thin call into the engine."""
