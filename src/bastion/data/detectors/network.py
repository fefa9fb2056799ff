"""Network identifiers: IPv4 and IPv6 addresses, MAC addresses (see the policy for the MAC default)."""

from __future__ import annotations

import ipaddress
import re

from bastion.data import entities as E
from bastion.data.detectors._common import WORDISH, bounded, whole
from bastion.data.detectors.interface import Detector, Family


def _v_ipv4(m: re.Match[str]) -> tuple[int, int] | None:
    if m.start() > 0 and m.string[m.start() - 1] in "0123456789.":
        return None
    for part in m.group().split("."):
        if int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            return None
    return whole(m)


def _v_ipv6(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if len(text) < 3 or text.count(":") < 2:
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return whole(m)


IPV4 = Detector(
    E.IP_ADDRESS,
    re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\d|\.\d)"),
    0.9,
    _v_ipv4,
    prefilter=".",
)
IPV6 = Detector(
    E.IP_ADDRESS,
    re.compile(r"[0-9A-Fa-f:](?<![\w:][0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,7}(?![\w:])"),
    0.9,
    _v_ipv6,
    prefilter=":",
)
MAC = Detector(
    E.MAC_ADDRESS,
    re.compile(r"[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![\w:-])"),
    0.8,
    bounded(WORDISH),
)

IP_FAMILY = Family(
    name="ip",
    entities=frozenset({E.IP_ADDRESS}),
    members=(IPV4, IPV6),
    positives=(
        ("login from 192.168.10.42 at noon", "192.168.10.42"),
        ("peer 2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"),
    ),
    negatives=("version 10.0.19041.1", "999.12.1.1", "at 12:30:45", "ratio 1.2.3.4.5"),
)
MAC_FAMILY = Family(
    name="mac",
    entities=frozenset({E.MAC_ADDRESS}),
    members=(MAC,),
    positives=(("device 00:1A:2B:3C:4D:5E online", "00:1A:2B:3C:4D:5E"),),
    negatives=("12:30:45", "00:1A:2B:3C:4D", "sha 001A2B3C4D5E6F"),
)

__all__ = ["IPV4", "IPV6", "IP_FAMILY", "MAC", "MAC_FAMILY"]
