"""In-memory stand-ins for the operating system, used by unit tests."""
