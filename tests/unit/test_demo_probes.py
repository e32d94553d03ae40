"""The demo's ICMP checksum, without a network (its DHCP is the client's: test_client_dhcp)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from lanparty.demo import probes


@given(st.binary(min_size=2, max_size=200).filter(lambda data: len(data) % 2 == 0))
def test_a_checksummed_message_sums_to_zero(data: bytes) -> None:
    with_sum = data + struct.pack("!H", probes._checksum(data))
    assert probes._checksum(with_sum) == 0
