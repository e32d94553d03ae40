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


def test_the_old_import_paths_name_the_same_enum() -> None:
    assert obs.DropReason is counters.DropReason is proto.DropReason is DropReason
