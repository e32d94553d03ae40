"""The client: a remote player's PC, a TAP adapter joined to a room through the relay."""
