"""The client on Linux: the TAP device that gives the player's PC its LAN interface."""
