# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which address the sandbox LoadBalancer controller gives each Service, and how one of its watchers
lists, watches and lists again: plain tests against a scripted API, no cluster needed."""

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


class _ScriptedApi:
    """Stands in for common.Api: serves a Service store, applies status patches, plays scripted watches."""

    server = "https://127.0.0.1:1"

    def __init__(self, watches):
        self.store = {}  # name -> Service
        self.rv = 10
        self.watches = list(watches)  # each: a function(api) -> iterable of watch events
        self.calls = []

    def add(self, name: str, **spec) -> dict:
        self.rv += 1
        obj = _service(name, **spec)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.store[name] = obj
        return obj

    def get(self, path, timeout=10.0):
        self.calls.append(("GET", path))
        return 200, {"metadata": {"resourceVersion": str(self.rv)}, "items": [dict(o) for o in self.store.values()]}

    def watch(self, path, timeout):
        self.calls.append(("WATCH", path))
        return self.watches.pop(0)(self)

    def request(self, method, path, body=None, timeout=10.0, content_type="application/json"):
        self.calls.append((method, path, content_type, body))
        name = path.split("/")[-2]
        obj = self.store[name]
        if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            return 409, {"message": "conflict"}
        self.rv += 1
        obj = dict(obj, status={"loadBalancer": {"ingress": body["status"]["loadBalancer"]["ingress"]}
                                if body["status"]["loadBalancer"]["ingress"] else {}})
        obj["metadata"] = dict(obj["metadata"], resourceVersion=str(self.rv))
        self.store[name] = obj
        return 200, obj


class _FakeCluster:
    name, index = "cluster1", 1

    def __init__(self, api):
        self._api = api

    def api(self):
        return self._api

    def pids(self):
        return {"kube-apiserver": 4242}


def test_a_watcher_lists_watches_and_lists_again_after_410_gone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MESHFED_SANDBOX_DIR", str(tmp_path))

    def first_watch(api):
        yield {"type": "ADDED", "object": api.add("b")}
        yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}

    def second_watch(api):
        watcher.halt.set()  # the test ends after this watch
        yield {"type": "DELETED", "object": api.store.pop("a")}

    api = _ScriptedApi([first_watch, second_watch])
    api.add("a")
    ctrl = lb.Controller()
    watcher = lb.Watcher(ctrl, "cluster1")
    watcher.cluster = _FakeCluster(api)
    watcher.start()
    watcher.join(10)
    assert not watcher.is_alive(), "the watcher did not stop after its second watch"

    patches = [(c[1], c[2], c[3]["status"]["loadBalancer"]["ingress"]) for c in api.calls if c[0] == "PATCH"]
    status_path = "/api/v1/namespaces/ns/services/%s/status"
    assert patches == [(status_path % "a", "application/merge-patch+json", [{"ip": "127.0.1.1", "ipMode": "VIP"}]),
                       (status_path % "b", "application/merge-patch+json", [{"ip": "127.0.1.2", "ipMode": "VIP"}])]
    lists = [c[1] for c in api.calls if c[0] == "GET"]
    watches = [c[1] for c in api.calls if c[0] == "WATCH"]
    assert lists == ["/api/v1/services", "/api/v1/services"]  # listed again after the 410
    assert "resourceVersion=11&" in watches[0] and "allowWatchBookmarks=true" in watches[0]
    assert "resourceVersion=14&" in watches[1]  # the second list's
    out = capsys.readouterr().out
    assert "cluster1: ns/a: 127.0.1.1" in out and "cluster1: ns/b: 127.0.1.2" in out
    assert "410 Gone" in out and "cluster1: ns/a deleted: 127.0.1.1 is free again" in out
    report = lb.read_report()["clusters"]["cluster1"]
    assert report["synced"] and report["api_server_pid"] == 4242
    assert report["addresses"] == {"ns/b": "127.0.1.2"} and report["pending"] == {}
