"""The endpoint side, shared by gateway and client: options, session, supervision, bridge."""
