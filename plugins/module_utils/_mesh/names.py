# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Kubernetes names and labels, and the collection's ownership labels (pure).

Ownership: every object this collection writes outside ``istioctl install``
carries ``app.kubernetes.io/managed-by: meshfed.istio``.  Objects written by the
reconciler (``reconcile_runner``) also carry ``meshfed.istio/owner: <owner>``,
which names the set the object belongs to (one owner per role step, such as
``meshfed-global`` or ``install-istio``): the reconciler lists, prunes and
refuses to take over by that label.
"""

from __future__ import annotations

import re

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "meshfed.istio"
OWNER_LABEL = "meshfed.istio/owner"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def managed_labels(owner=None):
    """The ownership labels of an object this collection writes (with its owner, when given)."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if owner is not None:
        labels[OWNER_LABEL] = owner
    return labels


def is_managed(obj):
    """Whether ``obj`` (a dict) carries the collection's managed-by label."""
    return labels_of(obj).get(MANAGED_BY_LABEL) == MANAGED_BY


def labels_of(obj):
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def is_dns1123_label(value):
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value):
    return isinstance(value, str) and len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))


def is_label_value(value):
    return isinstance(value, str) and len(value) <= 63 and bool(LABEL_VALUE.match(value))


def some(items, limit=5, sep=", "):
    """``items`` joined by ``sep``, at most ``limit`` of them, then "... N more"."""
    items = list(items)
    text = sep.join(str(i) for i in items[:limit])
    if len(items) > limit:
        text += "%s... %d more" % (sep, len(items) - limit)
    return text
