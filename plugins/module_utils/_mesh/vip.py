# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Virtual IPs for the ``.global`` hosts one cluster imports (pure, no I/O).

Each importing cluster gives every imported ``<svc>.<ns>.global`` host one
address of a private range, written into the host's ServiceEntry
(``spec.addresses``) so that sidecars can route plain TCP to it.  The map
host -> address is persisted (a ConfigMap) and fed back as ``previous``:

* a host that is still wanted keeps its address, whatever else was added or
  removed;
* a host that is no longer wanted releases its address, unless it is kept
  (``keep``: its ServiceEntry stays, as with prune=false);
* a new host gets an address derived from a hash of its name, then the next
  free one (linear probing), so the same inputs always give the same map,
  whatever the order of ``hosts``.  It skips, while the range has other free
  addresses, those released by this very allocation: a concurrent run whose
  map this one replaces may still be writing ServiceEntries with them.

The network and broadcast addresses of the range are never handed out, nor an
address some ServiceEntry we do not manage already uses (``taken``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

DEFAULT_CIDR = "240.240.0.0/16"
# Class E (reserved, never routed) is what Istio's own auto-allocation uses.
RESERVED_RANGE = ipaddress.ip_network("240.0.0.0/4")
# Accepted for compatibility with older Istio multicluster guides, with a warning.
LOOPBACK_RANGE = ipaddress.ip_network("127.255.0.0/16")
LOOPBACK_WARNING = (
    "%s: %s is a loopback range; applications and libraries may treat 127.0.0.0/8 addresses as local and never "
    "send the traffic to the sidecar. Istio recommends a class E range such as %s.")
# ConfigMap data keys: [-._a-zA-Z0-9]+, and a host is a DNS name (at most 253 characters).
HOST_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
MAX_HOST_LEN = 253


def parse_cidr(cidr, field="vip_cidr"):
    """(IPv4Network, warnings) for a VIP range; MeshError naming ``field`` when it cannot be one."""
    if not isinstance(cidr, str) or not cidr.strip():
        raise MeshError("%s: must be an IPv4 CIDR such as %s, got %r" % (field, DEFAULT_CIDR, cidr), field=field)
    try:
        net = ipaddress.ip_network(cidr.strip(), strict=True)
    except ValueError as e:
        raise MeshError("%s: %r is not a valid CIDR: %s" % (field, cidr, e), field=field)
    if net.version != 4:
        raise MeshError("%s: %s is not an IPv4 range; VIPs are IPv4 addresses" % (field, net), field=field)
    warnings = []
    if net.subnet_of(LOOPBACK_RANGE):
        warnings.append(LOOPBACK_WARNING % (field, net, DEFAULT_CIDR))
    elif net.is_loopback or net.overlaps(ipaddress.ip_network("127.0.0.0/8")):
        raise MeshError("%s: %s is a loopback range; only %s is accepted there (and %s is recommended)"
                        % (field, net, LOOPBACK_RANGE, DEFAULT_CIDR), field=field)
    elif not net.subnet_of(RESERVED_RANGE):
        raise MeshError("%s: %s is not inside %s (class E, never routed) or %s; VIPs from a routable range could "
                        "shadow real addresses" % (field, net, RESERVED_RANGE, LOOPBACK_RANGE), field=field)
    if net.num_addresses < 4:
        raise MeshError("%s: %s has no usable address besides its network and broadcast addresses; use a /30 "
                        "or larger range" % (field, net), field=field)
    return net, warnings


def usable_count(net):
    """Addresses of ``net`` that can be handed out (all but network and broadcast)."""
    return net.num_addresses - 2


def _check_host(host, field):
    if not isinstance(host, str) or not host or len(host) > MAX_HOST_LEN or not HOST_RE.match(host):
        raise MeshError("%s: %r is not a host name that can have a VIP (letters, digits, '-', '.' and '_', "
                        "at most %d characters; no wildcards)" % (field, host, MAX_HOST_LEN), field=field)


def _parse_address(value, what, field):
    try:
        addr = ipaddress.ip_address(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise MeshError("%s: %s: %r is not an IP address" % (field, what, value), field=field)
    if addr.version != 4:
        raise MeshError("%s: %s: %s is not an IPv4 address" % (field, what, addr), field=field)
    return addr


def parse_persisted(data, field="previous", what="the persisted VIP map"):
    """The host -> address map from a ConfigMap's ``data`` (None or {} for none), validated.

    Every key must be a host name, every value an IPv4 address, and no address
    may appear twice; errors name the entry at fault.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MeshError("%s: %s must be a mapping of host to address, got %s" % (field, what, type(data).__name__),
                        field=field)
    out, seen = {}, {}
    for host in sorted(data, key=str):
        try:
            _check_host(host, field)
        except MeshError:
            raise MeshError("%s: %s: key %r is not a host name" % (field, what, host), field=field)
        addr = str(_parse_address(data[host], "entry %s" % host, field))
        if addr in seen:
            raise MeshError("%s: %s: %s and %s both have address %s" % (field, what, seen[addr], host, addr),
                            field=field)
        seen[addr] = host
        out[host] = addr
    return out


def to_configmap_data(allocation):
    """A ConfigMap ``data`` dict (host -> address as strings, sorted by host) for an allocation."""
    return dict((str(host), str(allocation[host])) for host in sorted(allocation))


def _taken_index(taken):
    """({int address: owner}, [(first int, last int, owner)]) from an address -> owner mapping or an iterable.

    Entries may be single addresses or CIDRs (ServiceEntry ``spec.addresses`` allows both);
    what is not IPv4 cannot collide with a VIP and is skipped.
    """
    if not taken:
        return {}, []
    pairs = taken.items() if isinstance(taken, dict) else ((t, None) for t in taken)
    singles, ranges = {}, []
    for value, owner in pairs:
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            continue
        if net.version != 4:
            continue
        if net.num_addresses == 1:
            singles.setdefault(int(net.network_address), owner)
        else:
            ranges.append((int(net.network_address), int(net.broadcast_address), owner))
    return singles, ranges


def _taken_by(addr_int, singles, ranges):
    """(True, owner) when the address is taken by a foreign ServiceEntry, else (False, None)."""
    if addr_int in singles:
        return True, singles[addr_int]
    for first, last, owner in ranges:
        if first <= addr_int <= last:
            return True, owner
    return False, None


def _slot(host, size):
    digest = hashlib.sha256(host.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % size


def _probe(base, size, start, skip):
    """The first address (int) from slot ``start`` on, linear probing, for which ``skip`` is false; None."""
    for probe in range(size):
        addr_int = base + (start + probe) % size
        if not skip(addr_int):
            return addr_int
    return None


def allocate(hosts, previous=None, cidr=DEFAULT_CIDR, taken=None, field="vip_cidr", hosts_field="hosts", keep=()):
    """Allocate one VIP per host.  Returns ({host: address}, warnings).

    ``previous`` is the persisted map (host -> address, as parse_persisted returns);
    ``taken`` maps addresses (or CIDRs) used by ServiceEntries we do not manage to
    their "namespace/name" (an iterable of addresses is accepted too).  ``keep``:
    hosts of ``previous`` that keep their entry although not in ``hosts`` (their
    ServiceEntries are not pruned): they are in the result with their address, which
    no other host gets.  Raises MeshError (``field``) for a bad range, an exhausted
    range, or a previous allocation that collides with a foreign ServiceEntry's address.
    """
    net, warnings = parse_cidr(cidr, field)
    if isinstance(hosts, (str, bytes)):
        raise MeshError("%s: must be a list of host names, got the string %r" % (hosts_field, hosts), field=hosts_field)
    wanted = set()
    for host in hosts or ():
        _check_host(host, hosts_field)
        wanted.add(host)
    size = usable_count(net)
    previous = parse_persisted(previous or {})
    base = int(net.network_address) + 1  # first usable address
    first, last = base, base + size - 1
    kept = dict((h, previous[h]) for h in set(keep or ()) - wanted if h in previous)
    # addresses of kept hosts are not handed out; those outside the range cannot collide
    used = set(a for a in (int(ipaddress.ip_address(v)) for v in kept.values()) if first <= a <= last)
    n_kept = len(used)
    if len(wanted) + n_kept > size:
        raise MeshError("%s: %s has %d usable addresses but %d hosts need one; use a larger range"
                        % (field, net, size, len(wanted) + n_kept), field=field)
    singles, ranges = _taken_index(taken)

    allocation = dict(kept)
    for host in sorted(wanted):
        if host not in previous:
            continue
        addr = ipaddress.ip_address(previous[host])
        addr_int = int(addr)
        if not first <= addr_int <= last:
            warnings.append("%s: host %s had address %s, which is not a usable address of %s; it gets a new one"
                            % (field, host, addr, net))
            continue
        hit, owner = _taken_by(addr_int, singles, ranges)
        if hit:
            raise MeshError("%s: host %s has address %s, which collides with an address of the existing "
                            "ServiceEntry %s (not managed by this collection); change that ServiceEntry's "
                            "addresses or choose another %s" % (field, host, addr, owner or "(unknown)", field),
                            field=field)
        allocation[host] = str(addr)
        used.add(addr_int)
    released_now = set(int(ipaddress.ip_address(a)) for h, a in previous.items() if h not in allocation)

    def skip(addr_int):
        return addr_int in used or _taken_by(addr_int, singles, ranges)[0]

    for host in sorted(wanted - set(allocation)):
        start = _slot(host, size)
        addr_int = _probe(base, size, start, lambda a: a in released_now or skip(a))
        if addr_int is None:
            addr_int = _probe(base, size, start, skip)  # the range is full but for what was released
        if addr_int is None:
            n_taken = size - len(used)
            raise MeshError("%s: %s has %d usable addresses, %d of them taken by ServiceEntries not managed by "
                            "this collection, but %d hosts need one; use a larger range"
                            % (field, net, size, n_taken, len(wanted) + n_kept), field=field)
        allocation[host] = str(ipaddress.ip_address(addr_int))
        used.add(addr_int)
    return dict((h, allocation[h]) for h in sorted(allocation)), warnings


def released(previous, allocation):
    """Hosts of ``previous`` that ``allocation`` no longer has (their addresses are free again)."""
    return sorted(set(previous or {}) - set(allocation))
