# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VIP allocation for .global hosts: stable, deterministic, unique, collision-aware."""

from __future__ import annotations

import ipaddress
import random
import time

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vip
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

HOSTS = ["httpbin.bar.global", "sleep.foo.global", "reviews.bookinfo.global", "ratings.bookinfo.global"]


def in_range(addr, cidr=vip.DEFAULT_CIDR):
    net = ipaddress.ip_network(cidr)
    a = ipaddress.ip_address(addr)
    return a in net and a not in (net.network_address, net.broadcast_address)


# --- the range ----------------------------------------------------------------

@pytest.mark.parametrize("cidr", ["240.240.0.0/16", "240.0.0.0/4", "250.1.2.0/24", "241.0.0.0/30", " 240.240.0.0/16 "])
def test_good_cidrs(cidr):
    net, warnings = vip.parse_cidr(cidr)
    assert net.version == 4
    assert warnings == []


@pytest.mark.parametrize("cidr, fragment", [
    ("", "must be an IPv4 CIDR"),
    (None, "must be an IPv4 CIDR"),
    ("240.240.0.1/16", "is not a valid CIDR"),
    ("240.240.0.0/33", "is not a valid CIDR"),
    ("not-a-cidr", "is not a valid CIDR"),
    ("fd00::/64", "is not an IPv4 range"),
    ("10.0.0.0/16", "is not inside 240.0.0.0/4"),
    ("192.168.0.0/24", "is not inside 240.0.0.0/4"),
    ("224.0.0.0/3", "is not inside 240.0.0.0/4"),
    ("127.0.0.0/16", "is a loopback range; only 127.255.0.0/16"),
    ("127.0.0.0/8", "is a loopback range"),
    ("240.240.0.0/31", "no usable address"),
    ("240.240.0.1/32", "no usable address"),
])
def test_bad_cidrs_name_the_field(cidr, fragment):
    with pytest.raises(MeshError) as e:
        vip.parse_cidr(cidr)
    assert e.value.field == "vip_cidr"
    assert str(e.value).startswith("vip_cidr: ")
    assert fragment in str(e.value)


def test_bad_cidr_reports_the_callers_field():
    with pytest.raises(MeshError) as e:
        vip.allocate(HOSTS, cidr="10.0.0.0/8", field="federation_vip_cidr")
    assert e.value.field == "federation_vip_cidr"


@pytest.mark.parametrize("cidr", ["127.255.0.0/16", "127.255.10.0/24"])
def test_loopback_127_255_is_accepted_with_a_warning(cidr):
    alloc, warnings = vip.allocate(HOSTS, cidr=cidr)
    assert len(warnings) == 1
    assert "loopback" in warnings[0] and "240.240.0.0/16" in warnings[0]
    assert all(in_range(a, cidr) for a in alloc.values())


# --- determinism and stability ------------------------------------------------

def test_every_host_gets_a_unique_address_in_the_range():
    hosts = ["svc%d.ns%d.global" % (i, i % 7) for i in range(200)]
    alloc, warnings = vip.allocate(hosts)
    assert warnings == []
    assert sorted(alloc) == sorted(hosts)
    assert len(set(alloc.values())) == len(hosts)
    assert all(in_range(a) for a in alloc.values())


def test_same_inputs_same_result_and_order_does_not_matter():
    hosts = ["svc%d.bar.global" % i for i in range(50)]
    first = vip.allocate(hosts)[0]
    shuffled = list(hosts)
    random.Random(7).shuffle(shuffled)
    assert vip.allocate(shuffled)[0] == first
    assert vip.allocate(tuple(reversed(hosts)))[0] == first
    assert vip.allocate(hosts + hosts[:5])[0] == first  # duplicates are one host


def test_previous_run_is_kept_as_is():
    first = vip.allocate(HOSTS)[0]
    again, warnings = vip.allocate(HOSTS, previous=vip.to_configmap_data(first))
    assert again == first
    assert warnings == []


def test_adding_and_removing_hosts_keeps_the_others():
    first = vip.allocate(HOSTS)[0]
    hosts = HOSTS[1:] + ["new.svc.global", "other.svc.global"]
    second = vip.allocate(hosts, previous=first)[0]
    for h in HOSTS[1:]:
        assert second[h] == first[h]
    assert "httpbin.bar.global" not in second
    assert vip.released(first, second) == ["httpbin.bar.global"]
    assert len(set(second.values())) == len(second)


def test_previous_address_is_kept_even_where_the_hash_would_not_put_it():
    previous = {"httpbin.bar.global": "240.240.7.7"}
    alloc = vip.allocate(["httpbin.bar.global", "sleep.foo.global"], previous=previous)[0]
    assert alloc["httpbin.bar.global"] == "240.240.7.7"
    assert alloc["sleep.foo.global"] != "240.240.7.7"


def test_a_new_host_never_takes_a_previous_hosts_address():
    # In a /29 (6 usable addresses) with 5 previous hosts, the new one must get the last free address.
    cidr = "240.1.1.0/29"
    previous = dict(("h%d.ns.global" % i, "240.1.1.%d" % (i + 1)) for i in range(5))
    alloc = vip.allocate(list(previous) + ["new.ns.global"], previous=previous, cidr=cidr)[0]
    assert alloc["new.ns.global"] == "240.1.1.6"
    for h, a in previous.items():
        assert alloc[h] == a


def test_a_previous_address_outside_a_changed_range_is_reallocated_with_a_warning():
    previous = {"httpbin.bar.global": "240.240.0.9"}
    alloc, warnings = vip.allocate(["httpbin.bar.global"], previous=previous, cidr="240.241.0.0/24")
    assert in_range(alloc["httpbin.bar.global"], "240.241.0.0/24")
    assert len(warnings) == 1
    assert "httpbin.bar.global had address 240.240.0.9" in warnings[0]


def test_network_and_broadcast_addresses_are_never_used():
    cidr = "240.9.9.0/30"
    for i in range(40):
        alloc = vip.allocate(["a%d.global" % i, "b%d.global" % i], cidr=cidr)[0]
        assert sorted(alloc.values()) == ["240.9.9.1", "240.9.9.2"]
    alloc, warnings = vip.allocate(["x.global"], previous={"x.global": "240.9.9.3"}, cidr=cidr)
    assert alloc["x.global"] in ("240.9.9.1", "240.9.9.2")
    assert warnings


# --- exhaustion ---------------------------------------------------------------

def test_range_exhausted_names_range_size_and_count():
    with pytest.raises(MeshError) as e:
        vip.allocate(["a.global", "b.global", "c.global"], cidr="240.0.0.0/30")
    assert e.value.field == "vip_cidr"
    assert "240.0.0.0/30 has 2 usable addresses but 3 hosts need one" in str(e.value)


def test_range_exhausted_by_foreign_addresses():
    taken = {"240.0.0.1": "other/se1", "240.0.0.2": "other/se2", "240.0.0.3": "other/se3"}
    with pytest.raises(MeshError) as e:
        vip.allocate(["a.global", "b.global", "c.global", "d.global"], cidr="240.0.0.0/29", taken=taken)
    msg = str(e.value)
    assert "240.0.0.0/29 has 6 usable addresses, 3 of them taken by ServiceEntries" in msg
    assert "4 hosts need one" in msg


def test_exactly_full_range_works():
    hosts = ["h%d.global" % i for i in range(6)]
    alloc = vip.allocate(hosts, cidr="240.0.0.0/29")[0]
    assert sorted(alloc.values(), key=ipaddress.ip_address) == ["240.0.0.%d" % i for i in range(1, 7)]


# --- collisions with ServiceEntries we do not manage -------------------------

def test_new_hosts_avoid_taken_addresses():
    cidr = "240.0.0.0/29"
    taken = dict(("240.0.0.%d" % i, "other/se%d" % i) for i in range(1, 6))
    alloc = vip.allocate(["only.global"], cidr=cidr, taken=taken)[0]
    assert alloc == {"only.global": "240.0.0.6"}


def test_taken_may_be_cidrs_or_a_plain_list_and_ignores_junk():
    cidr = "240.0.0.0/29"
    taken = {"240.0.0.0/30": "other/a", "240.0.0.4": "other/b", "240.0.0.5/32": "other/c",
             "fd00::1": "other/v6", "garbage": "other/junk"}
    alloc = vip.allocate(["only.global"], cidr=cidr, taken=taken)[0]
    assert alloc == {"only.global": "240.0.0.6"}
    alloc = vip.allocate(["only.global"], cidr=cidr, taken=["240.0.0.%d" % i for i in (1, 2, 3, 4, 6)])[0]
    assert alloc == {"only.global": "240.0.0.5"}


def test_previous_address_colliding_with_a_foreign_service_entry_fails():
    previous = {"httpbin.bar.global": "240.240.0.10", "sleep.foo.global": "240.240.0.11"}
    with pytest.raises(MeshError) as e:
        vip.allocate(list(previous), previous=previous, taken={"240.240.0.10": "istio-system/legacy-httpbin"})
    msg = str(e.value)
    assert e.value.field == "vip_cidr"
    assert "httpbin.bar.global" in msg
    assert "240.240.0.10" in msg
    assert "collides with an address of the existing ServiceEntry istio-system/legacy-httpbin" in msg


def test_previous_address_inside_a_foreign_cidr_fails():
    with pytest.raises(MeshError) as e:
        vip.allocate(["a.global"], previous={"a.global": "240.240.1.7"}, taken={"240.240.1.0/24": "ns/wide"})
    assert "ServiceEntry ns/wide" in str(e.value)


def test_a_released_host_may_collide_without_error():
    previous = {"gone.global": "240.240.0.10", "kept.global": "240.240.0.11"}
    alloc = vip.allocate(["kept.global"], previous=previous, taken={"240.240.0.10": "ns/se"})[0]
    assert alloc == {"kept.global": "240.240.0.11"}


# --- kept hosts (prune=false) and addresses released by this allocation --------

def test_kept_hosts_stay_in_the_map_and_their_addresses_are_not_handed_out():
    cidr = "240.1.1.0/29"  # 6 usable addresses
    previous = dict(("h%d.ns.global" % i, "240.1.1.%d" % (i + 1)) for i in range(5))
    alloc, warnings = vip.allocate(["new.ns.global"], previous=previous, cidr=cidr, keep=list(previous))
    assert warnings == []
    assert alloc == dict(previous, **{"new.ns.global": "240.1.1.6"})
    assert vip.released(previous, alloc) == []


def test_keep_ignores_wanted_hosts_and_hosts_not_in_previous():
    previous = {"a.global": "240.240.0.7", "b.global": "240.240.0.8"}
    alloc = vip.allocate(["a.global"], previous=previous, keep=["a.global", "b.global", "never.global"])[0]
    assert alloc == previous


def test_kept_addresses_count_against_the_range():
    previous = {"a.global": "240.0.0.1", "b.global": "240.0.0.2"}
    with pytest.raises(MeshError) as e:
        vip.allocate(["c.global"], previous=previous, cidr="240.0.0.0/30", keep=list(previous))
    assert "240.0.0.0/30 has 2 usable addresses but 3 hosts need one" in str(e.value)


def test_a_kept_address_outside_a_changed_range_stays_as_it_is():
    previous = {"old.global": "240.240.0.9"}
    alloc, warnings = vip.allocate(["new.global"], previous=previous, cidr="240.241.0.0/24", keep=["old.global"])
    assert alloc["old.global"] == "240.240.0.9"
    assert in_range(alloc["new.global"], "240.241.0.0/24")
    assert warnings == []


def test_a_new_host_skips_addresses_released_in_the_same_allocation():
    # A concurrent run whose map this one replaces may still write ServiceEntries with the
    # addresses released here: while the range has others, they are not handed out again.
    cidr = "240.1.1.0/29"
    gone = ["g%d.ns.global" % i for i in range(3)]
    previous = dict((h, "240.1.1.%d" % (i + 1)) for i, h in enumerate(gone))
    new = ["n%d.ns.global" % i for i in range(3)]
    alloc = vip.allocate(new, previous=previous, cidr=cidr)[0]
    assert sorted(alloc.values()) == ["240.1.1.4", "240.1.1.5", "240.1.1.6"]
    assert vip.released(previous, alloc) == gone


def test_released_addresses_are_used_when_the_range_has_no_other():
    cidr = "240.1.1.0/29"
    previous = dict(("g%d.ns.global" % i, "240.1.1.%d" % (i + 1)) for i in range(6))
    new = ["n%d.ns.global" % i for i in range(6)]
    alloc = vip.allocate(new, previous=previous, cidr=cidr)[0]
    assert sorted(alloc.values()) == sorted(previous.values())


def test_skipping_released_addresses_is_still_deterministic():
    previous = dict(("g%d.ns.global" % i, "240.1.0.%d" % (i + 1)) for i in range(20))
    new = ["n%d.ns.global" % i for i in range(20)]
    first = vip.allocate(new, previous=previous, cidr="240.1.0.0/26")[0]
    assert vip.allocate(list(reversed(new)), previous=previous, cidr="240.1.0.0/26")[0] == first
    assert not set(first.values()) & set(previous.values())


# --- hosts --------------------------------------------------------------------

@pytest.mark.parametrize("hosts, fragment", [
    (["*.bar.global"], "'*.bar.global' is not a host name"),
    ([""], "'' is not a host name"),
    ([None], "None is not a host name"),
    (["a" * 254], "is not a host name"),
    ("httpbin.bar.global", "must be a list of host names"),
])
def test_bad_hosts(hosts, fragment):
    with pytest.raises(MeshError) as e:
        vip.allocate(hosts)
    assert e.value.field == "hosts"
    assert fragment in str(e.value)


def test_no_hosts():
    assert vip.allocate([]) == ({}, [])
    assert vip.allocate(None, previous={"gone.global": "240.240.0.1"}) == ({}, [])


# --- the persisted map --------------------------------------------------------

def test_configmap_round_trip():
    alloc = vip.allocate(HOSTS)[0]
    data = vip.to_configmap_data(alloc)
    assert list(data) == sorted(HOSTS)
    assert all(isinstance(v, str) for v in data.values())
    assert vip.parse_persisted(data) == alloc


@pytest.mark.parametrize("data", [None, {}])
def test_parse_empty(data):
    assert vip.parse_persisted(data) == {}


@pytest.mark.parametrize("data, fragment", [
    ({"httpbin.bar.global": "not-an-ip"}, "entry httpbin.bar.global: 'not-an-ip' is not an IP address"),
    ({"httpbin.bar.global": "fd00::1"}, "entry httpbin.bar.global: fd00::1 is not an IPv4 address"),
    ({"a.global": "240.240.0.1", "b.global": "240.240.0.1"}, "a.global and b.global both have address 240.240.0.1"),
    ({"bad host": "240.240.0.1"}, "key 'bad host' is not a host name"),
    (["240.240.0.1"], "must be a mapping of host to address"),
])
def test_parse_rejects_bad_entries(data, fragment):
    with pytest.raises(MeshError) as e:
        vip.parse_persisted(data, field="vip_configmap")
    assert e.value.field == "vip_configmap"
    assert fragment in str(e.value)


def test_allocate_validates_previous():
    with pytest.raises(MeshError) as e:
        vip.allocate(["a.global"], previous={"a.global": "nope"})
    assert "entry a.global" in str(e.value)


# --- scale --------------------------------------------------------------------

def test_a_thousand_hosts_in_a_16_is_fast_and_stable():
    hosts = ["svc%d.ns%d.global" % (i, i % 40) for i in range(1000)]
    t0 = time.monotonic()
    alloc = vip.allocate(hosts)[0]
    again = vip.allocate(hosts, previous=vip.to_configmap_data(alloc))[0]
    grown = vip.allocate(hosts + ["extra%d.global" % i for i in range(100)], previous=alloc)[0]
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed
    assert again == alloc
    assert len(set(grown.values())) == 1100
    assert all(grown[h] == alloc[h] for h in hosts)


def test_a_nearly_full_range_still_allocates():
    # 254 usable addresses, 250 hosts: probing has to walk past long runs of used addresses
    hosts = ["h%d.global" % i for i in range(250)]
    alloc = vip.allocate(hosts, cidr="240.3.3.0/24")[0]
    assert len(set(alloc.values())) == 250
    assert all(in_range(a, "240.3.3.0/24") for a in alloc.values())
