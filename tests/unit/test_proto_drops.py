"""Drop reasons: the wire strings of the ``stats`` message's ``drops``."""

from __future__ import annotations

from lanparty import obs, proto
from lanparty.obs import counters
from lanparty.proto import DropReason


def test_drop_reasons_are_the_wire_strings() -> None:
    assert {reason.value for reason in DropReason} == {
        "malformed",
        "spoofed_source",
        "source_conflict",
        "jumbo",
        "switch_control",
        "dhcp_server",
        "ipv6_ra",
        "suspicious",
        "rate_limited_broadcast",
        "rate_limited_unknown_unicast",
        "rate_limited_total",
        "reflection",
        "no_gateway",
        "rate_limited_frames",
        "arp_spoof",
        "nd_spoof",
        "dhcp_spoof",
        "rate_limited_dhcp",
        "vlan_tagged",
        "icmp_redirect",
        "fragment_invalid",
        "fragment_timeout",
        "oversize",
        "send_queue_full",
        "receive_queue_full",
        "not_established",
    }


def test_drop_reasons_have_one_home() -> None:
    assert proto.DropReason is DropReason
    assert not hasattr(obs, "DropReason")
    assert not hasattr(counters, "DropReason") or counters.DropReason is DropReason
