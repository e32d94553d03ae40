"""``python -m lanparty.demo``: the whole bridge in network namespaces, shown and removed.

Also the world the end-to-end tests and ``benchmarks/e2e.py`` build on:
``world`` (namespaces, the three roles as processes, a DHCP server) and
``probes`` (ping, a DHCP lease, broadcast discovery, TCP transfers). Linux
and root only.
"""
