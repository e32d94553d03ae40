"""GRO off while the gateway runs, as it was afterwards (a veth in a namespace)."""

from __future__ import annotations

import pytest

from lanparty.errors import HostNetworkError
from lanparty.gateway import offloads
from lanparty.gateway.offloads import gro_enabled, receive_offloads_off
from tests.netns.netns import add_veth_pair, inside, new_namespace

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("gro_before", [True, False])
def test_gro_is_off_inside_and_restored_after(gro_before: bool) -> None:
    with new_namespace() as namespace:
        add_veth_pair(namespace, "lan0", "peer0")
        with inside(namespace):
            offloads._set_gro("lan0", gro_before)
            assert gro_enabled("lan0") is gro_before
            seen_inside: list[bool] = []
            with pytest.raises(RuntimeError, match="boom"):  # noqa: PT012, SIM117 - the exit path is the test
                with receive_offloads_off("lan0"):
                    seen_inside.append(gro_enabled("lan0"))
                    raise RuntimeError("boom")
            assert seen_inside == [False]
            assert gro_enabled("lan0") is gro_before


def test_a_restore_that_fails_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with new_namespace() as namespace:
        add_veth_pair(namespace, "lan0", "peer0")
        with inside(namespace):
            offloads._set_gro("lan0", True)

            def refuse(interface: str, enabled: bool) -> None:
                raise OSError(1, "Operation not permitted")

            guard = receive_offloads_off("lan0")
            guard.__enter__()
            monkeypatch.setitem(offloads._OFFLOADS, "gro", (gro_enabled, refuse))
            with pytest.raises(HostNetworkError, match="ethtool -K lan0 gro on"):
                guard.__exit__(None, None, None)
