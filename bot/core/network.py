"""IP addresses and networks as the config names them (trusted proxies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """`values` (addresses or CIDRs) as networks; ValueError names a bad one."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8, 127.0.0.1)"
            ) from None
    return tuple(out)
