# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""xds.decode_route_config on RouteConfigurations built with Envoy's own protobuf messages, shaped
as istiod sends them for a VirtualService with a header match and weighted subsets."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds

pytestmark = pytest.mark.skipif(not xds.HAS_XDS, reason="grpcio and xds-protos are not installed")

REVIEWS = "reviews.bookinfo.svc.cluster.local"


def subset(name):
    return "outbound|9080|%s|%s" % (name, REVIEWS)


def route_config():
    from envoy.config.route.v3 import route_pb2, route_components_pb2 as rc
    from envoy.type.matcher.v3 import regex_pb2, string_pb2
    from google.protobuf import wrappers_pb2

    def weighted(*pairs):
        return rc.RouteAction(weighted_clusters=rc.WeightedCluster(clusters=[
            rc.WeightedCluster.ClusterWeight(name=n, weight=wrappers_pb2.UInt32Value(value=w)) for n, w in pairs]))

    jason = rc.Route(name="jason", match=rc.RouteMatch(prefix="/", headers=[
        rc.HeaderMatcher(name="end-user", string_match=string_pb2.StringMatcher(exact="jason")),
        rc.HeaderMatcher(name="x-canary", string_match=string_pb2.StringMatcher(
            safe_regex=regex_pb2.RegexMatcher(regex="^y.*"))),
        rc.HeaderMatcher(name="x-old", prefix_match="v", invert_match=True),
        rc.HeaderMatcher(name="x-any", present_match=True)]),
        route=rc.RouteAction(cluster=subset("v2")))
    rest = rc.Route(name="default", match=rc.RouteMatch(prefix="/"), route=weighted((subset("v1"), 90), (subset("v3"), 10)))
    direct = rc.Route(name="redirect", match=rc.RouteMatch(prefix="/old"), redirect=rc.RedirectAction(path_redirect="/new"))
    vh = rc.VirtualHost(name=REVIEWS + ":9080", domains=[REVIEWS, "reviews"], routes=[jason, direct, rest])
    return route_pb2.RouteConfiguration(name="9080", virtual_hosts=[vh])


def test_routes_keep_header_matches_and_weights_in_order():
    got = xds.decode_route_config(route_config())
    assert got["name"] == "9080"
    (vh,) = got["virtual_hosts"]
    assert vh["domains"] == [REVIEWS, "reviews"]
    # the redirect is not a route to clusters: left out
    assert [r["name"] for r in vh["routes"]] == ["jason", "default"]
    jason, rest = vh["routes"]
    assert jason["headers"] == ["end-user", "x-canary", "x-old", "x-any"]
    assert jason["header_match"] == {"end-user": {"exact": "jason"}, "x-canary": {"regex": "^y.*"},
                                     "x-old": {"prefix": "v", "invert": True}, "x-any": {"present": True}}
    assert jason["clusters"] == [[subset("v2"), 100]]
    assert rest["header_match"] == {} and rest["prefix"] == "/"
    assert rest["clusters"] == [[subset("v1"), 90], [subset("v3"), 10]]
