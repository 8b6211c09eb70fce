# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which address the sandbox LoadBalancer controller gives each Service: plain tests, no cluster needed."""

from __future__ import annotations

from tools.sandbox import common, lb
from tools.sandbox.lb import Svc

POOL = lb.pool_addresses(1)


def _lb(key: str, created: str = "2026-01-01T00:00:00Z", **fields) -> Svc:
    return Svc(key=key, wants_lb=True, created=created, **fields)


def _service(name: str, svc_type: str = "LoadBalancer", ips=(), **spec) -> dict:
    return {"metadata": {"namespace": "ns", "name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "resourceVersion": "1"},
            "spec": dict(spec, type=svc_type),
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]} if ips else {}}}


def test_pools_are_per_cluster_and_start_at_1():
    assert common.lb_pool(1) == "127.0.1.0/24" and common.lb_pool(3) == "127.0.3.0/24"
    assert POOL[:2] == ["127.0.1.1", "127.0.1.2"] and POOL[-1] == "127.0.1.254" and len(POOL) == 254
    assert lb.pool_addresses(2)[0] == "127.0.2.1"
    # the inventories' fixed gateway addresses are outside every pool
    assert all(common.gateway_address(i) not in lb.pool_addresses(i) for i in range(1, 10))


def test_new_services_get_the_lowest_free_addresses_oldest_first():
    addresses, pending = lb.plan([_lb("ns/b", "2026-01-01T00:00:02Z"), _lb("ns/a", "2026-01-01T00:00:01Z"),
                                  _lb("ns/c", "2026-01-01T00:00:02Z")], POOL)
    assert addresses == {"ns/a": "127.0.1.1", "ns/b": "127.0.1.2", "ns/c": "127.0.1.3"}
    assert pending == {}


def test_an_address_once_given_is_kept_and_a_freed_one_is_reused():
    # ns/old holds .2; .1 was freed (its Service deleted): the next new Service gets .1, then .3
    addresses, dummy = lb.plan([_lb("ns/old", current=("127.0.1.2",)), _lb("ns/new1", "2026-01-02T00:00:00Z"),
                                _lb("ns/new2", "2026-01-03T00:00:00Z")], POOL)
    assert addresses == {"ns/old": "127.0.1.2", "ns/new1": "127.0.1.1", "ns/new2": "127.0.1.3"}


def test_services_that_are_no_load_balancers_get_none_and_foreign_classes_are_left_alone():
    svcs = [lb.view(_service("plain", "ClusterIP")),
            lb.view(_service("was-lb", "ClusterIP", ips=("127.0.1.1",))),
            lb.view(_service("other-class", ips=("10.0.0.1",), loadBalancerClass="example.com/lb")),
            lb.view(_service("our-class", loadBalancerClass=lb.LB_CLASS))]
    addresses, pending = lb.plan(svcs, POOL)
    assert addresses == {"ns/plain": None, "ns/was-lb": None, "ns/our-class": "127.0.1.1"}
    assert pending == {}
    assert lb.ingress(None) == [] and lb.ingress("127.0.1.1") == [{"ip": "127.0.1.1", "ipMode": "VIP"}]


def test_load_balancer_ip_is_used_unless_another_service_holds_it():
    svcs = [_lb("ns/holder", current=("127.0.1.1",)),
            _lb("ns/wants-held", "2026-01-02T00:00:00Z", requested="127.0.1.1"),
            _lb("ns/wants-free", "2026-01-02T00:00:00Z", requested="127.0.1.2"),
            _lb("ns/wants-outside", "2026-01-02T00:00:00Z", requested="192.0.2.10"),
            _lb("ns/bad", "2026-01-02T00:00:00Z", requested="2001:db8::1"),
            _lb("ns/plain", "2026-01-03T00:00:00Z")]
    addresses, pending = lb.plan(svcs, POOL)
    assert addresses == {"ns/holder": "127.0.1.1", "ns/wants-held": None, "ns/wants-free": "127.0.1.2",
                         "ns/wants-outside": "192.0.2.10", "ns/bad": None, "ns/plain": "127.0.1.3"}
    assert pending == {"ns/wants-held": "spec.loadBalancerIP 127.0.1.1 is in use by ns/holder",
                       "ns/bad": "spec.loadBalancerIP 2001:db8::1 is not an IPv4 address"}


def test_a_status_address_is_replaced_when_it_does_not_fit():
    # outside the pool without a request, or not the address requested: given a proper one
    addresses, dummy = lb.plan([_lb("ns/a", current=("10.1.1.1",)),
                                _lb("ns/b", current=("127.0.1.9",), requested="127.0.1.7")], POOL)
    assert addresses == {"ns/a": "127.0.1.1", "ns/b": "127.0.1.7"}


def test_two_services_showing_the_same_address_the_older_keeps_it():
    addresses, dummy = lb.plan([_lb("ns/young", "2026-01-02T00:00:00Z", current=("127.0.1.1",)),
                                _lb("ns/old", "2026-01-01T00:00:00Z", current=("127.0.1.1",))], POOL)
    assert addresses == {"ns/old": "127.0.1.1", "ns/young": "127.0.1.2"}


def test_an_exhausted_pool_leaves_the_youngest_pending():
    svcs = [_lb("ns/s%03d" % i) for i in range(255)]
    addresses, pending = lb.plan(svcs, POOL)
    assert sorted(a for a in addresses.values() if a) == sorted(POOL)
    assert pending == {"ns/s254": "every address of the pool 127.0.1.1-127.0.1.254 is in use"}


def test_the_controller_command_line_is_recognised_only_for_its_own_sandbox():
    args = ["/usr/bin/python3", "-m", "tools.sandbox.lb", "--sandbox-dir", "/w/a/.sandbox"]
    assert common.is_lb_controller(args, "/w/a/.sandbox")
    assert not common.is_lb_controller(args, "/w/a/.sandbox2")
    assert not common.is_lb_controller(["/usr/bin/python3", "-m", "tools.sandbox", "up"], "/w/a/.sandbox")
