"""The relay: rooms, admission, the switch, safety filters and rate limits."""
