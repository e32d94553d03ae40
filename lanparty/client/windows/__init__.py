"""The Windows back end of the client: TAP-Windows6 and the IP Helper API (Windows only)."""
