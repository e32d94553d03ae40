"""Network namespaces for tests: made with ``ip netns``, always deleted, entered with setns.

    with new_namespace() as name:              # lp-t-<random>, deleted on exit
        add_veth_pair(name, "lan0", "peer0")   # both ends up, inside the namespace
        with inside(name):                     # this thread enters the namespace
            sock = make_a_socket()             # sockets stay where they were made
        ...                                    # back in the original namespace

``inside`` switches only the calling thread (setns); Trio runs tests in
one thread, so everything the test does in the block (not what it starts in
worker threads or child processes: use ``ip netns exec`` for those) happens
in the namespace. Needs root.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
from collections.abc import Iterator

from lanparty.demo.netns import inside

__all__ = ["add_veth_pair", "inside", "ip", "new_namespace", "promiscuity"]


def ip(*args: str, namespace: str | None = None) -> str:
    """Run ``ip`` (in ``namespace`` if given); return its output, raise on failure."""
    prefix = ["ip", "-n", namespace] if namespace else ["ip"]
    result = subprocess.run(
        [*prefix, *args], capture_output=True, text=True, check=False, timeout=10
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join([*prefix, *args])}: {result.stderr.strip()}")
    return result.stdout


@contextlib.contextmanager
def new_namespace(prefix: str = "lp-t") -> Iterator[str]:
    """A fresh network namespace (loopback up), deleted on exit even after a failure."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    ip("netns", "add", name)
    try:
        ip("link", "set", "lo", "up", namespace=name)
        yield name
    finally:
        ip("netns", "delete", name)


def add_veth_pair(namespace: str, name: str, peer: str, *, mtu: int = 1500) -> None:
    """A veth pair inside ``namespace``, both ends up, IPv6 off (no stray traffic)."""
    for key in ("all", "default"):
        path = f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6"
        with inside(namespace), contextlib.suppress(OSError), open(path, "w") as file:
            file.write("1")
    ip("link", "add", name, "mtu", str(mtu), "type", "veth", "peer", "name", peer,
       "mtu", str(mtu), namespace=namespace)  # fmt: skip
    ip("link", "set", name, "up", namespace=namespace)
    ip("link", "set", peer, "up", namespace=namespace)


def promiscuity(namespace: str, interface: str) -> int:
    """How many holders keep ``interface`` promiscuous (``ip -d link``'s count)."""
    match = re.search(
        r"promiscuity (\d+)", ip("-d", "link", "show", interface, namespace=namespace)
    )
    if match is None:
        raise RuntimeError(f"no promiscuity count for {interface}")
    return int(match.group(1))
