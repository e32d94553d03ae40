"""The gateway: bridges a wired LAN interface into a QUIC relay room."""
