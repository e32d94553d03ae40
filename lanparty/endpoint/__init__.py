"""The endpoint side, shared by the gateway and the client: options, session, supervision."""
