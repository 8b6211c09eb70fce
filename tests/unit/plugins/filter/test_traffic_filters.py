# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The traffic filters: mesh_traffic_stage, mesh_traffic_stages, mesh_global_routes, mesh_sample_global_routes."""

from __future__ import annotations

import importlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic

FILTERS = ["mesh_traffic_stage", "mesh_traffic_stages", "mesh_global_routes", "mesh_sample_global_routes"]


def plugin(name):
    return importlib.import_module("ansible_collections.meshfed.istio.plugins.filter." + name)


def flt(name):
    return plugin(name).FilterModule().filters()[name]


@pytest.mark.parametrize("name", FILTERS)
def test_documentation(name):
    mod = plugin(name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["name"] == name and doc["version_added"] == "0.4.0"
    assert doc["short_description"] and doc["description"] and doc["author"]
    assert doc["options"]["_input"]["required"] is True
    code = getattr(mod, name).__code__
    positional = [p.strip() for p in doc["positional"].split(",")]
    # every argument of the function is documented; the positional ones in order
    assert positional[1:] == [a for a in code.co_varnames[1:code.co_argcount] if a in positional]
    assert set(code.co_varnames[1:code.co_argcount]) <= set(doc["options"])
    assert "_value" in yaml.safe_load(mod.RETURN)
    assert yaml.safe_load(mod.EXAMPLES)
    assert list(mod.FilterModule().filters()) == [name]


def test_every_stage_of_every_sample():
    for sample in sorted(traffic.SAMPLE_STAGES):
        names = flt("mesh_traffic_stages")(sample)
        assert names == traffic.stage_names(traffic.SAMPLE_STAGES[sample])
        policies = [flt("mesh_traffic_stage")(sample, n) for n in names]
        if sample == "httpbin-global":
            routes = [flt("mesh_global_routes")([p]) for p in policies]
            assert routes == [{"httpbin.bar.global": {"v1": 100}}, {"httpbin.bar.global": {"v1": 90, "v2": 10}},
                              {"httpbin.bar.global": {"v2": 100}}]
            continue
        # one DestinationRule for every stage, a VirtualService of its own for each
        rules = [traffic.destination_rule(p) for p in policies]
        assert all(r == rules[0] for r in rules)
        services = [traffic.virtual_service(p) for p in policies]
        assert len(set(repr(s) for s in services)) == len(names)


def test_bookinfo_stages():
    stage = flt("mesh_traffic_stage")
    assert flt("mesh_traffic_stages")("bookinfo-reviews") == ["all-v1", "v2-10", "v2-v3-50", "all-v3", "jason"]
    assert stage("bookinfo-reviews", "v2-10")["canary"] == {"stable": "v1", "canary": "v2", "percent": 10}
    jason = stage("bookinfo-reviews", "jason", namespace="tp-test")
    assert jason["host"] == "reviews.tp-test.svc.cluster.local" and jason["namespace"] == "tp-test"
    assert traffic.virtual_service(jason)["spec"]["http"] == [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "route": [{"destination": {"host": "reviews.tp-test.svc.cluster.local", "subset": "v2"}}]},
        {"route": [{"destination": {"host": "reviews.tp-test.svc.cluster.local", "subset": "v3"}}]}]


def test_a_staged_policy_of_ones_own():
    own = {"policy": {"host": "ratings.shop.svc.cluster.local", "namespace": "shop",
                      "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}}},
           "stages": [{"name": "old", "blue_green": {"active": "v1"}},
                      {"name": "half", "canary": {"stable": "v1", "canary": "v2", "percent": 50}}]}
    assert flt("mesh_traffic_stages")(own) == ["old", "half"]
    assert flt("mesh_traffic_stage")(own, "half")["canary"]["percent"] == 50


@pytest.mark.parametrize("call, message", [
    (lambda: flt("mesh_traffic_stage")("bookinfo-reviews", "v9"),
     "mesh_traffic_stage: stage: 'v9' is not a stage; stages: all-v1, v2-10, v2-v3-50, all-v3, jason"),
    (lambda: flt("mesh_traffic_stage")("nginx", "all-v1"), "mesh_traffic_stage: sample: 'nginx' is not a sample"),
    (lambda: flt("mesh_traffic_stage")({"policy": {}, "stages": [{"name": "s", "subsets": {}}]}, "s"),
     "mesh_traffic_stage: stage: stage s sets subsets; a stage sets only routes, blue_green, canary"),
    (lambda: flt("mesh_traffic_stage")("httpbin-global", "all-v1", namespace="x"),
     "mesh_traffic_stage: sample: httpbin.bar.global is a .global host"),
    (lambda: flt("mesh_traffic_stages")(["x"]), "mesh_traffic_stages: sample: must be a sample name"),
    (lambda: flt("mesh_traffic_stages")({"policy": {}}), "mesh_traffic_stages: a staged policy is a mapping"),
    (lambda: flt("mesh_global_routes")({"host": "httpbin.bar.global"}),
     "mesh_global_routes: expects a list of traffic policies, got dict"),
    (lambda: flt("mesh_global_routes")([{"host": "httpbin.bar.global", "subsets": {"v1": {"version": "v1"}},
                                         "routes": [{"to": {"v1": 99}}]}]),
     "mesh_global_routes: policies[0] (httpbin.bar.global).routes[0].to: weights 99 = 99, must sum to 100"),
])
def test_bad_arguments(call, message):
    with pytest.raises(AnsibleFilterError) as e:
        call()
    assert message in str(e.value)


def test_sample_global_routes_add_the_global_stage_to_the_federation_routes():
    f = flt("mesh_sample_global_routes")
    assert f({}, {"httpbin-global": "v2-10", "bookinfo-reviews": "all-v3"}) == {"httpbin.bar.global": {"v1": 90, "v2": 10}}
    assert f({"x.y.global": {"v1": 100}}, {}) == {"x.y.global": {"v1": 100}}
    with pytest.raises(AnsibleFilterError, match=r"mesh_sample_global_routes: deploy_samples_traffic.httpbin-global: "
                                                 r"'v9' is not a stage"):
        f({}, {"httpbin-global": "v9"})
    with pytest.raises(AnsibleFilterError, match=r"mesh_sample_global_routes: federate_clusters_global_routes: "
                                                 r"httpbin.bar.global is routed by deploy_samples_traffic too"):
        f({"httpbin.bar.global": {"v1": 100}}, {"httpbin-global": "all-v1"})
