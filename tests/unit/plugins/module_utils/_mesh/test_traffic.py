# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic policies: validation naming the field, shortcuts, Istio objects, determinism, stages, .global."""

from __future__ import annotations

import copy
import itertools
import json
import random

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation as fed
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError, in_terms_of

REVIEWS = "reviews.bookinfo.svc.cluster.local"
SUBSETS = {"v1": {"version": "v1"}, "v2": {"version": "v2"}, "v3": {"version": "v3"}}


def policy(**kw):
    out = {"host": REVIEWS, "namespace": "bookinfo", "subsets": copy.deepcopy(SUBSETS),
           "routes": [{"match": {"user": "jason"}, "to": {"v2": 100}}, {"to": {"v1": 90, "v2": 10}}]}
    out.update(kw)
    return out


def dest(subset, weight=None, host=REVIEWS):
    out = {"destination": {"host": host, "subset": subset}}
    if weight is not None:
        out["weight"] = weight
    return out


def refused(policies, field="policies", **kw):
    with pytest.raises(MeshError) as e:
        traffic.validate(policies, field=field, **kw)
    assert e.value.field == field
    return str(e.value)


# --- the objects --------------------------------------------------------------------

def test_destination_rule_and_virtual_service_in_istio_shape():
    p = policy(traffic_policy={"tls": {"mode": "ISTIO_MUTUAL"}})
    assert traffic.destination_rule(p) == {"name": "reviews", "namespace": "bookinfo", "spec": {
        "host": REVIEWS,
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}},
                    {"name": "v3", "labels": {"version": "v3"}}]}}
    assert traffic.virtual_service(p) == {"name": "reviews", "namespace": "bookinfo", "spec": {
        "hosts": [REVIEWS],
        "http": [{"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [dest("v2")]},
                 {"route": [dest("v1", 90), dest("v2", 10)]}]}}


def test_entries_are_what_the_reconciler_accepts():
    out = traffic.entries([policy(), policy(host="ratings.bookinfo.svc.cluster.local", routes=[{"to": "v1"}])])
    assert [e["name"] for e in out["DestinationRule"]] == ["ratings", "reviews"]
    assert [e["name"] for e in out["VirtualService"]] == ["ratings", "reviews"]
    for kind, items in out.items():
        checked = reconcile.validate_entries(items, "traffic-policy", kind=kind, field="policies")
        assert [c["spec"] for c in checked] == [i["spec"] for i in items]
        for item in checked:
            assert reconcile.desired_object(item, "traffic-policy", kind)["apiVersion"] == "networking.istio.io/v1"


def test_entries_of_nothing():
    assert traffic.entries(None) == {"DestinationRule": [], "VirtualService": []}
    assert traffic.entries([]) == {"DestinationRule": [], "VirtualService": []}


def test_name_namespace_and_short_host():
    assert traffic.destination_rule(policy(name="reviews-rollout"))["name"] == "reviews-rollout"
    vs = traffic.virtual_service(policy(host="reviews", routes=[{"to": "v1"}]))
    assert vs["name"] == "reviews" and vs["spec"]["hosts"] == ["reviews"]


def test_subsets_only_is_a_destination_rule_without_virtual_service():
    p = policy(routes=None)
    assert traffic.virtual_service(p) is None
    assert traffic.destination_rule(p)["spec"]["subsets"]
    out = traffic.entries([p])
    assert len(out["DestinationRule"]) == 1 and out["VirtualService"] == []


def test_traffic_policy_only_is_a_destination_rule_without_subsets():
    p = {"host": REVIEWS, "namespace": "bookinfo", "traffic_policy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}
    assert traffic.destination_rule(p)["spec"] == {"host": REVIEWS,
                                                   "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}
    assert traffic.destination_rule({"host": REVIEWS, "namespace": "bookinfo"}) is None


# zero weights: dropped; a sole destination carries no weight (Istio sends it everything)
@pytest.mark.parametrize("to, route", [
    ({"v1": 100, "v2": 0}, [dest("v1")]),
    ({"v1": 100}, [dest("v1")]),
    ("v1", [dest("v1")]),
    ({"v1": 0, "v2": 0, "v3": 100}, [dest("v3")]),
    ({"v1": 50, "v2": 0, "v3": 50}, [dest("v1", 50), dest("v3", 50)]),
])
def test_zero_weights_are_dropped(to, route):
    vs = traffic.virtual_service(policy(routes=[{"to": to}]))
    assert vs["spec"]["http"] == [{"route": route}]


def test_a_weight_of_zero_is_no_change():
    a = traffic.virtual_service(policy(routes=[{"to": {"v1": 100, "v2": 0}}]))
    b = traffic.virtual_service(policy(blue_green={"active": "v1"}, routes=None))
    assert a == b


def test_match_forms():
    routes = [
        {"match": {"headers": {"end-user": "jason"}}, "to": "v2"},
        {"match": {"headers": {"x-canary": {"prefix": "yes"}, "cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}}},
         "to": "v3"},
        {"match": [{"uri": {"prefix": "/api"}}, {"uri": "/health", "user": "tester"}], "to": "v2"},
        {"to": "v1"},
    ]
    http = traffic.virtual_service(policy(routes=routes))["spec"]["http"]
    assert [r.get("match") for r in http] == [
        [{"headers": {"end-user": {"exact": "jason"}}}],
        [{"headers": {"cookie": {"regex": "^(.*?;)?(user=jason)(;.*)?$"}, "x-canary": {"prefix": "yes"}}}],
        [{"uri": {"prefix": "/api"}}, {"headers": {"end-user": {"exact": "tester"}}, "uri": {"exact": "/health"}}],
        None,
    ]


def test_user_and_other_headers_combine():
    http = traffic.virtual_service(policy(routes=[
        {"match": {"user": "jason", "headers": {"x-a": "1"}}, "to": "v2"}, {"to": "v1"}]))["spec"]["http"]
    assert http[0]["match"] == [{"headers": {"end-user": {"exact": "jason"}, "x-a": {"exact": "1"}}}]


def test_ingress_virtual_service_with_gateways_hosts_port_and_export_to():
    p = {"host": "productpage.bookinfo.svc.cluster.local", "namespace": "bookinfo", "name": "bookinfo",
         "subsets": {"v1": {"version": "v1"}}, "gateways": ["bookinfo-gateway", "istio-system/shared", "mesh"],
         "hosts": ["bookinfo.example.com", "*"], "port": 9080, "export_to": ["istio-system", "."],
         "routes": [{"match": [{"uri": "/productpage"}, {"uri": {"prefix": "/static"}}], "to": "v1"}]}
    vs = traffic.virtual_service(p)
    assert vs == {"name": "bookinfo", "namespace": "bookinfo", "spec": {
        "hosts": ["bookinfo.example.com", "*"],
        "gateways": ["bookinfo-gateway", "istio-system/shared", "mesh"],
        "http": [{"match": [{"uri": {"exact": "/productpage"}}, {"uri": {"prefix": "/static"}}],
                  "route": [{"destination": {"host": "productpage.bookinfo.svc.cluster.local", "subset": "v1",
                                             "port": {"number": 9080}}}]}],
        "exportTo": [".", "istio-system"]}}
    assert traffic.destination_rule(p)["spec"]["exportTo"] == [".", "istio-system"]


# --- shortcuts ----------------------------------------------------------------------

def test_blue_green_is_all_traffic_to_the_active_subset():
    vs = traffic.virtual_service(policy(routes=None, blue_green={"active": "v2"}))
    assert vs["spec"]["http"] == [{"route": [dest("v2")]}]


@pytest.mark.parametrize("percent, route", [
    (10, [dest("v1", 90), dest("v2", 10)]),
    (50, [dest("v1", 50), dest("v2", 50)]),
    (0, [dest("v1")]),
    (100, [dest("v2")]),
])
def test_canary_splits_percent_to_the_canary(percent, route):
    vs = traffic.virtual_service(policy(routes=None, canary={"stable": "v1", "canary": "v2", "percent": percent}))
    assert vs["spec"]["http"] == [{"route": route}]


def test_canary_order_is_by_subset_name_not_role():
    vs = traffic.virtual_service(policy(routes=None, canary={"stable": "v3", "canary": "v2", "percent": 10}))
    assert vs["spec"]["http"] == [{"route": [dest("v2", 10), dest("v3", 90)]}]


def test_shortcut_follows_matched_routes():
    p = policy(routes=[{"match": {"user": "jason"}, "to": "v3"}],
               canary={"stable": "v1", "canary": "v2", "percent": 10})
    assert traffic.virtual_service(p)["spec"]["http"] == [
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [dest("v3")]},
        {"route": [dest("v1", 90), dest("v2", 10)]}]


def test_shortcut_equals_its_expansion():
    expanded = policy(routes=[{"to": {"v1": 75, "v2": 25}}])
    short = policy(routes=None, canary={"stable": "v1", "canary": "v2", "percent": 25})
    assert traffic.virtual_service(expanded) == traffic.virtual_service(short)
    assert traffic.validate([expanded]) == traffic.validate([short])


# --- validation: every refusal names the policy and the key ----------------------------

P0 = "policies[0] (%s)" % REVIEWS


@pytest.mark.parametrize("changes, message", [
    # the policy and its keys
    ({"colour": "blue"}, P0 + ": unknown key(s) colour; allowed: host, namespace"),
    ({"host": None}, "policies[0]: host: None is not a lower-case DNS name"),
    ({"host": "Reviews.bookinfo"}, "policies[0] (Reviews.bookinfo): host: 'Reviews.bookinfo' is not a lower-case"),
    ({"host": "*.bookinfo.svc.cluster.local"}, "no wildcard"),
    ({"host": "a" * 64 + ".bookinfo"}, "is not a lower-case DNS name"),
    ({"host": "reviews.bookinfo.global"}, "policies[0] (reviews.bookinfo.global): host: reviews.bookinfo.global is a "
                                          ".global host, whose DestinationRule and VirtualService the federation writes"),
    ({"namespace": "Book_info"}, P0 + ": namespace: 'Book_info' is not a DNS-1123 label"),
    ({"namespace": None}, P0 + ": namespace: None is not a DNS-1123 label"),
    ({"name": "Reviews"}, P0 + ": name: 'Reviews' is not a DNS-1123 subdomain"),
    # subsets
    ({"subsets": ["v1"]}, P0 + ": subsets: must be a mapping of subset name to pod labels"),
    ({"subsets": {"V1": {"version": "v1"}}}, P0 + ": subsets: 'V1' is not a valid subset name (a DNS-1123 label"),
    ({"subsets": {"v1.0": {"version": "v1"}}}, "subsets: 'v1.0' is not a valid subset name"),
    ({"subsets": {"v1": {}}}, P0 + ".subsets.v1: must be a non-empty mapping of pod labels"),
    ({"subsets": {"v1": "v1"}}, P0 + ".subsets.v1: must be a non-empty mapping of pod labels"),
    ({"subsets": {"v1": {"bad key!": "v1"}}}, P0 + ".subsets.v1: 'bad key!' is not a valid label key"),
    ({"subsets": {"v1": {"-version": "v1"}}}, P0 + ".subsets.v1: '-version' is not a valid label key"),
    ({"subsets": {"v1": {"version": 1}}}, P0 + ".subsets.v1.version: must be a string, got int 1 (quote it)"),
    ({"subsets": {"v1": {"canary": True}}}, P0 + ".subsets.v1.canary: must be a string, got bool True"),
    ({"subsets": {"v1": {"version": "v1 beta"}}}, P0 + ".subsets.v1.version: 'v1 beta' is not a valid label value"),
    ({"subsets": {"v1": {"version": "x" * 64}}}, "is not a valid label value"),
    # routes and weights
    ({"routes": {"to": "v1"}}, P0 + ": routes: must be a list of routes"),
    ({"routes": ["v1"]}, P0 + ".routes[0]: must be a mapping with to and optionally match, got str 'v1'"),
    ({"routes": [{"weights": {"v1": 100}}]}, P0 + ".routes[0]: unknown key(s) weights; allowed: match, to"),
    ({"routes": [{"match": {"user": "jason"}}, {"to": "v1"}]}, P0 + ".routes[0]: to is required"),
    ({"routes": [{"to": {"v1": 90, "v2": 20}}]}, P0 + ".routes[0].to: weights 90 + 20 = 110, must sum to 100"),
    ({"routes": [{"match": {"user": "jason"}, "to": "v2"}, {"to": {"v1": 90, "v2": 20}}]},
     P0 + ".routes[1].to: weights 90 + 20 = 110, must sum to 100"),
    ({"routes": [{"to": {"v1": 40, "v2": 40}}]}, "weights 40 + 40 = 80, must sum to 100"),
    ({"routes": [{"to": {"v1": 0}}]}, "weights 0 = 0, must sum to 100"),
    ({"routes": [{"to": {"v1": "90", "v2": 10}}]},
     P0 + ".routes[0].to.v1: weight must be an integer from 0 to 100, got str '90'"),
    ({"routes": [{"to": {"v1": True}}]}, P0 + ".routes[0].to.v1: weight must be an integer from 0 to 100, got bool"),
    ({"routes": [{"to": {"v1": 90.0, "v2": 10}}]}, "weight must be an integer from 0 to 100, got float 90.0"),
    ({"routes": [{"to": {"v1": 110, "v2": -10}}]}, ".routes[0].to.v1: weight must be an integer from 0 to 100"),
    ({"routes": [{"to": {"v1": 100, "v2": -0.0}}]}, ".routes[0].to.v2: weight must be an integer"),
    ({"routes": [{"to": {"v1": 90, "v4": 10}}]}, P0 + ".routes[0].to: subset 'v4' is not defined (subsets: v1, v2, v3)"),
    ({"routes": [{"to": "v4"}]}, P0 + ".routes[0].to: subset 'v4' is not defined"),
    ({"routes": [{"to": {}}]}, P0 + ".routes[0].to: must be a subset name or a mapping of subset name to weight"),
    ({"routes": [{"to": ["v1"]}]}, ".routes[0].to: must be a subset name or a mapping"),
    ({"subsets": None, "routes": [{"to": "v1"}]}, ".routes[0].to: subset 'v1' is not defined (subsets: none)"),
    # the default route
    ({"routes": [{"to": "v1"}, {"match": {"user": "jason"}, "to": "v2"}]},
     P0 + ".routes[0]: has no match, so routes[1:] after it would never be used; the route without match must be "
          "the last"),
    ({"routes": [{"to": "v1"}, {"to": "v2"}]}, P0 + ".routes[0]: has no match"),
    ({"routes": [{"match": {"user": "jason"}, "to": "v2"}]},
     P0 + ".routes: every route has a match, so a request that matches none gets a 404"),
    # matches
    ({"routes": [{"match": {}, "to": "v2"}, {"to": "v1"}]}, P0 + ".routes[0].match: is empty"),
    ({"routes": [{"match": [], "to": "v2"}, {"to": "v1"}]}, P0 + ".routes[0].match: must be a condition"),
    ({"routes": [{"match": "jason", "to": "v2"}, {"to": "v1"}]}, P0 + ".routes[0].match: must be a condition"),
    ({"routes": [{"match": {"header": {"end-user": "jason"}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match: unknown key(s) header; allowed: headers, uri, user"),
    ({"routes": [{"match": [{"user": "a"}, {"cookie": "b"}], "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match[1]: unknown key(s) cookie"),
    ({"routes": [{"match": {"headers": {"End-User": "jason"}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.headers: 'End-User' is not a header name Istio matches (lower-case"),
    ({"routes": [{"match": {"headers": {":authority": "x"}}, "to": "v2"}, {"to": "v1"}]}, "is not a header name"),
    ({"routes": [{"match": {"headers": {}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.headers: must be a non-empty mapping"),
    ({"routes": [{"match": {"headers": {"end-user": {"equals": "jason"}}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.headers.end-user: must be a string or one of {exact: ...}, {prefix: ...}, {regex: ...}"),
    ({"routes": [{"match": {"headers": {"end-user": {"exact": "a", "prefix": "b"}}}, "to": "v2"}, {"to": "v1"}]},
     ".routes[0].match.headers.end-user: must be a string or one of"),
    ({"routes": [{"match": {"headers": {"end-user": {"exact": ""}}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.headers.end-user.exact: must be a non-empty string"),
    ({"routes": [{"match": {"headers": {"end-user": {"exact": 7}}}, "to": "v2"}, {"to": "v1"}]},
     ".routes[0].match.headers.end-user.exact: must be a non-empty string, got 7"),
    ({"routes": [{"match": {"headers": {"x": {"regex": "(?!bot).*"}}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.headers.x.regex: '(?!bot).*' uses lookaround or a backreference"),
    ({"routes": [{"match": {"uri": {"regex": r"(a)\1"}}, "to": "v2"}, {"to": "v1"}]},
     ".routes[0].match.uri.regex: '(a)\\\\1' uses lookaround or a backreference"),
    ({"routes": [{"match": {"uri": {"suffix": ".js"}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.uri: must be a string or one of"),
    ({"routes": [{"match": {"user": ""}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match.user: must be a non-empty string (the end-user header)"),
    ({"routes": [{"match": {"user": "jason", "headers": {"end-user": "bob"}}, "to": "v2"}, {"to": "v1"}]},
     P0 + ".routes[0].match: user and headers.end-user both set the end-user header; keep one"),
    # shortcuts
    ({"routes": None, "blue_green": {"active": "v4"}}, P0 + ".blue_green.active: subset 'v4' is not defined"),
    ({"routes": None, "blue_green": {}}, P0 + ".blue_green.active: is required: one of the subsets (v1, v2, v3)"),
    ({"routes": None, "blue_green": "v2"}, P0 + ".blue_green: must be a mapping {active: <subset>}, got str 'v2'"),
    ({"routes": None, "blue_green": {"active": "v2", "standby": "v1"}},
     P0 + ".blue_green: unknown key(s) standby; allowed: active"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v2"}},
     P0 + ".canary.percent: must be an integer from 0 to 100, got NoneType None"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v2", "percent": 101}},
     P0 + ".canary.percent: must be an integer from 0 to 100, got int 101"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v2", "percent": "10"}},
     ".canary.percent: must be an integer from 0 to 100, got str '10'"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v2", "percent": False}}, "got bool False"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v9", "percent": 10}},
     P0 + ".canary.canary: subset 'v9' is not defined"),
    ({"routes": None, "canary": {"canary": "v2", "percent": 10}}, P0 + ".canary.stable: is required"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v1", "percent": 10}},
     P0 + ".canary: stable and canary are both v1; a canary needs two subsets"),
    ({"routes": None, "canary": {"stable": "v1", "canary": "v2", "percent": 10, "step": 2}},
     P0 + ".canary: unknown key(s) step; allowed: stable, canary, percent"),
    ({"routes": None, "blue_green": {"active": "v2"}, "canary": {"stable": "v1", "canary": "v2", "percent": 10}},
     P0 + ": blue_green and canary both make the default route; keep one"),
    ({"routes": [{"to": "v1"}], "blue_green": {"active": "v2"}},
     P0 + ".routes[0]: has no match, but blue_green makes the default route"),
    ({"routes": [{"match": {"user": "a"}, "to": "v1"}, {"to": "v2"}],
      "canary": {"stable": "v1", "canary": "v2", "percent": 10}},
     P0 + ".routes[1]: has no match, but canary makes the default route"),
    # the other keys
    ({"traffic_policy": {"load_balancer": {"simple": "RANDOM"}}},
     P0 + ".traffic_policy: unknown key(s) load_balancer; allowed: loadBalancer"),
    ({"traffic_policy": "ISTIO_MUTUAL"}, P0 + ".traffic_policy: must be a mapping in Istio's trafficPolicy shape"),
    ({"traffic_policy": {"tls": {"mode": "STRICT"}}},
     P0 + ".traffic_policy.tls.mode: must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got 'STRICT'"),
    ({"traffic_policy": {"tls": "ISTIO_MUTUAL"}}, P0 + ".traffic_policy.tls: must be a mapping"),
    ({"gateways": "bookinfo-gateway"},
     P0 + ".gateways: must be a non-empty list, each a gateway name (mesh, <gateway> or <namespace>/<gateway>), "
          "got 'bookinfo-gateway'"),
    ({"gateways": ["Bookinfo"]}, P0 + ".gateways: 'Bookinfo' is not a gateway name"),
    ({"gateways": ["a/b/c"]}, ".gateways: 'a/b/c' is not a gateway name"),
    ({"hosts": ["bookinfo.example.com", "*.*.com"]}, P0 + ".hosts: '*.*.com' is not a host name"),
    ({"hosts": []}, P0 + ".hosts: must be a non-empty list"),
    ({"port": 0}, P0 + ".port: must be a port number (1-65535), got 0"),
    ({"port": "9080"}, P0 + ".port: must be a port number"),
    ({"port": True}, P0 + ".port: must be a port number"),
    ({"export_to": ["Other"]}, P0 + ".export_to: 'Other' is not '.', '*' or a namespace"),
    ({"export_to": "."}, P0 + ".export_to: must be a non-empty list"),
])
def test_refusals_name_the_policy_and_the_key(changes, message):
    p = policy()
    p.update(changes)
    text = refused([p])
    assert message in text, text
    assert text.startswith("policies[0]")


def test_policy_must_be_a_mapping_with_a_host():
    assert refused(["reviews"]).startswith("policies[0]: must be a mapping with host, namespace, subsets and routes")
    assert refused([{"namespace": "bookinfo"}]) == \
        "policies[0]: host is required (the service, such as reviews.bookinfo.svc.cluster.local)"
    assert refused({"host": REVIEWS}) == "policies: must be a list of traffic policies, got dict"


def test_refusal_names_the_callers_field_and_reads_as_the_variable():
    text = refused([policy(routes=[{"to": {"v1": 90, "v2": 20}}])], field="traffic_policies")
    assert text.startswith("traffic_policies[0] (%s).routes[0].to: weights" % REVIEWS)
    assert in_terms_of(text, "traffic_policies", {"traffic_policies": "deploy_samples_traffic"}).startswith(
        "deploy_samples_traffic[0] (%s)" % REVIEWS)


def test_refusal_names_the_index_of_the_bad_policy():
    good = policy(host="ratings.bookinfo.svc.cluster.local")
    text = refused([good, policy(routes=[{"to": "v9"}])])
    assert text.startswith("policies[1] (%s).routes[0].to: subset 'v9'" % REVIEWS)


def test_duplicate_hosts_are_refused():
    text = refused([policy(), policy(name="reviews-2")])
    assert text == ("policies[1] (%s): host %s already has a policy (policies[0]); give each host one policy"
                    % (REVIEWS, REVIEWS))


def test_two_policies_with_one_object_name_are_refused():
    text = refused([policy(), policy(host="reviews.other.svc.cluster.local")])
    assert text == ("policies[1] (reviews.other.svc.cluster.local): its objects would be named bookinfo/reviews, "
                    "as those of policies[0]; set name on one of them")
    # in another namespace, or with a name of its own, they do not collide
    assert len(traffic.validate([policy(), policy(host="reviews.other.svc.cluster.local", namespace="other")])) == 2
    assert len(traffic.validate([policy(), policy(host="reviews.other.svc.cluster.local", name="r2")])) == 2


def test_entries_refuse_before_returning_anything():
    with pytest.raises(MeshError, match=r"policies\[1\]"):
        traffic.entries([policy(host="ratings.bookinfo.svc.cluster.local"), policy(routes=[{"to": {"v1": 99}}])])


def test_gateway_routes_may_all_have_a_match():
    p = policy(gateways=["bookinfo-gateway"], routes=[{"match": {"uri": "/productpage"}, "to": "v1"}])
    assert traffic.virtual_service(p)["spec"]["http"][0]["match"] == [{"uri": {"exact": "/productpage"}}]


def test_regex_without_lookaround_is_accepted():
    p = policy(routes=[{"match": {"uri": {"regex": r"^/api/v[0-9]+/(users|items)\.json$"}}, "to": "v2"}, {"to": "v1"}])
    assert traffic.virtual_service(p)["spec"]["http"][0]["match"][0]["uri"]["regex"].endswith(r"\.json$")


def test_input_is_neither_changed_nor_shared():
    p = policy(traffic_policy={"tls": {"mode": "ISTIO_MUTUAL"}})
    before = copy.deepcopy(p)
    dr, vs = traffic.destination_rule(p), traffic.virtual_service(p)
    assert p == before
    dr["spec"]["trafficPolicy"]["tls"]["mode"] = "DISABLE"
    dr["spec"]["subsets"][0]["labels"]["version"] = "x"
    vs["spec"]["http"][0]["match"][0]["headers"]["end-user"]["exact"] = "bob"
    assert p == before
    assert traffic.destination_rule(p)["spec"]["trafficPolicy"] == {"tls": {"mode": "ISTIO_MUTUAL"}}


# --- determinism ----------------------------------------------------------------------

def _shuffled(value, rng):
    """``value`` with every mapping's keys in a random order (lists keep theirs: route order matters)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return dict((k, _shuffled(value[k], rng)) for k in keys)
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _full_policy():
    return {"host": REVIEWS, "namespace": "bookinfo", "export_to": ["istio-system", ".", "bookinfo"],
            "subsets": {"v3": {"version": "v3", "app": "reviews"}, "v1": {"version": "v1", "app": "reviews"},
                        "v2": {"version": "v2", "app": "reviews"}},
            "traffic_policy": {"tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST"},
                               "connectionPool": {"http": {"maxRetries": 3, "http1MaxPendingRequests": 10}}},
            "routes": [{"match": {"user": "jason", "headers": {"x-b": "2", "x-a": {"prefix": "1"}}, "uri": "/r"},
                        "to": {"v3": 0, "v2": 100}},
                       {"to": {"v3": 40, "v1": 60, "v2": 0}}]}


def test_same_input_same_output_in_any_mapping_order():
    reference = json.dumps(traffic.entries([_full_policy()]))
    rng = random.Random(7)
    for dummy in range(50):
        assert json.dumps(traffic.entries([_shuffled(_full_policy(), rng)])) == reference


def test_output_mappings_are_sorted():
    dr = traffic.destination_rule(_full_policy())
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["v1", "v2", "v3"]
    assert list(dr["spec"]["subsets"][0]["labels"]) == ["app", "version"]
    assert list(dr["spec"]["trafficPolicy"]) == ["connectionPool", "loadBalancer", "tls"]
    assert dr["spec"]["exportTo"] == [".", "bookinfo", "istio-system"]
    http = traffic.virtual_service(_full_policy())["spec"]["http"]
    assert list(http[0]["match"][0]["headers"]) == ["end-user", "x-a", "x-b"]
    assert [d["destination"]["subset"] for d in http[1]["route"]] == ["v1", "v3"]


def test_policy_order_does_not_change_the_entries():
    ps = [policy(), policy(host="ratings.bookinfo.svc.cluster.local", routes=[{"to": "v1"}]),
          policy(host="details", namespace="bookinfo", routes=None, blue_green={"active": "v1"})]
    outs = set(json.dumps(traffic.entries(list(perm))) for perm in itertools.permutations(ps))
    assert len(outs) == 1


def test_route_order_is_kept():
    a = [{"match": {"user": "a"}, "to": "v1"}, {"match": {"user": "b"}, "to": "v2"}, {"to": "v3"}]
    b = [a[1], a[0], a[2]]
    ha = traffic.virtual_service(policy(routes=a))["spec"]["http"]
    hb = traffic.virtual_service(policy(routes=b))["spec"]["http"]
    assert ha[0] == hb[1] and ha[1] == hb[0]


# --- stages -----------------------------------------------------------------------------

@pytest.mark.parametrize("staged", list(traffic.SAMPLE_STAGES))
def test_every_sample_stage_is_a_valid_policy(staged):
    staged = traffic.SAMPLE_STAGES[staged]
    for stage in traffic.stage_names(staged):
        p = traffic.stage_policy(staged, stage)
        if p["host"].endswith(".global"):
            assert traffic.global_routes([p])
        else:
            assert traffic.validate([p])


def test_bookinfo_reviews_stages():
    staged = traffic.BOOKINFO_REVIEWS
    assert traffic.stage_names(staged) == ["all-v1", "v2-10", "v2-v3-50", "all-v3", "jason"]
    http = dict((s, traffic.virtual_service(traffic.stage_policy(staged, s))["spec"]["http"])
                for s in traffic.stage_names(staged))
    assert http == {
        "all-v1": [{"route": [dest("v1")]}],
        "v2-10": [{"route": [dest("v1", 90), dest("v2", 10)]}],
        "v2-v3-50": [{"route": [dest("v2", 50), dest("v3", 50)]}],
        "all-v3": [{"route": [dest("v3")]}],
        "jason": [{"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [dest("v2")]},
                  {"route": [dest("v3")]}],
    }


def test_helloworld_stages_split_v1_and_v2():
    hosts = "helloworld.sample.svc.cluster.local"
    got = [traffic.virtual_service(traffic.stage_policy(traffic.HELLOWORLD, s))["spec"]["http"]
           for s in traffic.stage_names(traffic.HELLOWORLD)]
    assert got == [[{"route": [dest("v1", host=hosts)]}],
                   [{"route": [dest("v1", 90, hosts), dest("v2", 10, hosts)]}],
                   [{"route": [dest("v1", 50, hosts), dest("v2", 50, hosts)]}],
                   [{"route": [dest("v2", host=hosts)]}]]


@pytest.mark.parametrize("staged", ["bookinfo-reviews", "helloworld"])
def test_between_two_stages_only_the_virtual_service_changes(staged):
    staged = traffic.SAMPLE_STAGES[staged]
    stages = traffic.stage_names(staged)
    objects = dict((s, traffic.entries([traffic.stage_policy(staged, s)])) for s in stages)
    for a, b in itertools.permutations(stages, 2):
        assert objects[a]["DestinationRule"] == objects[b]["DestinationRule"]
        assert objects[a]["VirtualService"] != objects[b]["VirtualService"]
        # one object each, the same names: the reconciler updates the VirtualService, creates and prunes nothing
        assert [(e["namespace"], e["name"]) for e in objects[a]["VirtualService"]] == \
            [(e["namespace"], e["name"]) for e in objects[b]["VirtualService"]]


@pytest.mark.parametrize("staged", ["bookinfo-reviews", "helloworld"])
def test_a_stage_is_idempotent(staged):
    staged = traffic.SAMPLE_STAGES[staged]
    for stage in traffic.stage_names(staged):
        first = traffic.entries([traffic.stage_policy(staged, stage)])
        assert traffic.entries([traffic.stage_policy(staged, stage)]) == first
    # stage_policy does not change (or share) the staged data
    before = copy.deepcopy(staged)
    traffic.stage_policy(staged, "all-v1")["subsets"]["v1"]["version"] = "x"
    assert staged == before


def test_a_stage_replaces_the_routes_of_the_base():
    staged = {"policy": policy(), "stages": [{"name": "all-v3", "blue_green": {"active": "v3"}}]}
    p = traffic.stage_policy(staged, "all-v3")
    assert "routes" not in p and p["blue_green"] == {"active": "v3"}
    assert traffic.virtual_service(p)["spec"]["http"] == [{"route": [dest("v3")]}]


@pytest.mark.parametrize("staged, stage, message", [
    (traffic.BOOKINFO_REVIEWS, "v1-90", "stage: 'v1-90' is not a stage; stages: all-v1, v2-10, v2-v3-50, all-v3, jason"),
    ({"policy": policy(), "stages": [{"name": "s", "subsets": {"v1": {"version": "v1"}}}]}, "s",
     "stage: stage s sets subsets; a stage sets only routes, blue_green, canary, so that between stages only the "
     "VirtualService changes"),
    ({"policy": policy(), "stages": [{"name": "s", "routes": []}, {"name": "s", "routes": []}]}, "s",
     "stage: stage names must be unique, got s, s"),
    ({"stages": []}, "s", "stage: a staged policy is a mapping {policy, stages: [{name, ...}]}"),
    ([], "s", "stage: a staged policy is a mapping"),
])
def test_bad_stages_are_refused(staged, stage, message):
    with pytest.raises(MeshError) as e:
        traffic.stage_policy(staged, stage)
    assert e.value.field == "stage"
    assert str(e.value).startswith(message)


# --- .global hosts --------------------------------------------------------------------------

def _httpbin_exports():
    return [{"cluster": "cluster2", "network": "n2", "gateway": "gw2", "name": "httpbin", "namespace": "bar",
             "ports": [{"name": "http", "port": 8000}], "label_sets": [{"version": "v1"}, {"version": "v2"}]}]


def test_global_policy_becomes_the_federations_routes():
    p = traffic.stage_policy(traffic.HTTPBIN_GLOBAL, "v2-10")
    routes = traffic.global_routes([p])
    assert routes == {"httpbin.bar.global": {"v1": 90, "v2": 10}}
    # the federation takes it as is, and writes the objects of the names global_object_names gives
    (vs,) = fed.global_virtual_services(_httpbin_exports(), routes)
    (dr,) = fed.global_destination_rules(_httpbin_exports())
    names = traffic.global_object_names("httpbin.bar.global")
    assert names == {"DestinationRule": "istio-system/global-httpbin-bar",
                     "VirtualService": "istio-system/global-httpbin-bar"}
    assert "%s/%s" % (vs["namespace"], vs["name"]) == names["VirtualService"]
    assert "%s/%s" % (dr["namespace"], dr["name"]) == names["DestinationRule"]
    # the subsets the policy names are those the federation makes
    assert [s["name"] for s in dr["spec"]["subsets"]] == sorted(p["subsets"])


def test_global_routes_drop_zero_weights_and_take_every_shortcut():
    staged = traffic.HTTPBIN_GLOBAL
    assert [traffic.global_routes([traffic.stage_policy(staged, s)]) for s in traffic.stage_names(staged)] == [
        {"httpbin.bar.global": {"v1": 100}}, {"httpbin.bar.global": {"v1": 90, "v2": 10}},
        {"httpbin.bar.global": {"v2": 100}}]
    assert traffic.global_routes(None) == {}


def test_global_object_names_in_another_namespace():
    assert traffic.global_object_names("httpbin.bar.global", "mesh")["VirtualService"] == "mesh/global-httpbin-bar"


GLOBAL = {"host": "httpbin.bar.global", "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
          "routes": [{"to": {"v1": 50, "v2": 50}}]}


@pytest.mark.parametrize("changes, message", [
    ({"namespace": "bar"}, "policies[0] (httpbin.bar.global): namespace cannot be set for a .global host"),
    ({"traffic_policy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "port": 8000},
     "policies[0] (httpbin.bar.global): port, traffic_policy cannot be set for a .global host"),
    ({"routes": [{"match": {"user": "jason"}, "to": "v2"}, {"to": "v1"}]},
     "policies[0] (httpbin.bar.global): a .global host takes one route without match"),
    ({"routes": None}, "a .global host takes one route without match"),
    ({"subsets": {"beta": {"version": "v2"}}, "routes": [{"to": "beta"}]},
     "policies[0] (httpbin.bar.global).subsets.beta: the federation names the subset of labels {'version': 'v2'} 'v2'"),
    ({"host": "httpbin.bar.svc.cluster.local"}, "host: httpbin.bar.svc.cluster.local is not a .global host"),
    ({"host": "httpbin.global"}, "httpbin.global: is not a <service>.<namespace>.global host"),
    ({"routes": [{"to": {"v1": 50, "v2": 60}}]}, "policies[0] (httpbin.bar.global).routes[0].to: weights 50 + 60 = 110"),
])
def test_global_refusals(changes, message):
    p = copy.deepcopy(GLOBAL)
    p.update(changes)
    with pytest.raises(MeshError) as e:
        traffic.global_routes([p])
    assert e.value.field == "policies"
    assert message in str(e.value)


def test_global_duplicate_host_is_refused():
    with pytest.raises(MeshError, match=r"policies\[1\] \(httpbin.bar.global\): host httpbin.bar.global already"):
        traffic.global_routes([GLOBAL, GLOBAL])
