"""lanparty: a Layer 2 bridge over QUIC for LAN parties."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 2
ALPN = "lanparty/1"

__all__ = ["ALPN", "PROTOCOL_VERSION", "__version__"]
