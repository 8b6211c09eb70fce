# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The files a VM needs to join the mesh, as ``istioctl x workload entry configure``
makes them (pure; vmfiles_runner reads the cluster and writes them).

From a WorkloadGroup, the cluster's mesh config (ConfigMap ``istio[-<rev>]``), its
cluster ID, the mesh root and the address the VM reaches istiod at:

- ``cluster.env``: the proxy metadata of the mesh's ``defaultConfig`` plus what the
  WorkloadGroup gives (``KEY=value`` lines, sorted, values shell-quoted);
- ``mesh.yaml``: ``defaultConfig`` with that metadata and the group's probe;
- ``root-cert.pem``: the mesh root (ConfigMap ``istio-ca-root-cert``);
- ``hosts``: ``<address> istiod[-<rev>].<istio namespace>.svc``;
- ``istio-token``: a TokenRequest token, audience ``istio-ca`` (never returned).

Differences from istioctl, on purpose: the mesh config is taken as written in the
ConfigMap (istioctl passes it through protobuf, which drops fields set to their zero
value); a gateway without an address is an error naming the option to set (istioctl
writes an empty ``hosts`` and warns).
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import shlex

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

ISTIOD_PORT = 15012
TOKEN_AUDIENCE = "istio-ca"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"
MESH_KEY = "mesh"
VALUES_KEY = "values"
DEFAULT_GATEWAY = "istio-eastwestgateway"
# Kubernetes refuses TokenRequests shorter than 10 minutes
MIN_TOKEN_LIFETIME = 600

FILES = ("cluster.env", "mesh.yaml", "root-cert.pem", "hosts", "istio-token")
SECRET_FILES = ("istio-token",)
FILE_MODE = 0o644
SECRET_MODE = 0o600

NAME_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
REVISION_LABELS = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
PROXY_CONFIG_ANNOTATION = "proxy.istio.io/config"


def mode_of(rel):
    return SECRET_MODE if rel in SECRET_FILES else FILE_MODE


def is_revisioned(revision):
    return bool(revision) and revision != "default"


def istiod_host(istio_namespace, revision=""):
    """The name a VM resolves istiod by (the hosts entry)."""
    name = "istiod-%s" % revision if is_revisioned(revision) else "istiod"
    return "%s.%s.svc" % (name, istio_namespace)


def istiod_address(istio_namespace, revision=""):
    return "%s:%d" % (istiod_host(istio_namespace, revision), ISTIOD_PORT)


def mesh_configmap(revision=""):
    return "istio-%s" % revision if is_revisioned(revision) else "istio"


def injector_configmap(revision=""):
    return "istio-sidecar-injector-%s" % revision if is_revisioned(revision) else "istio-sidecar-injector"


def canonical_service(labels, workload_name):
    """(canonical name, canonical revision) of a workload, as Istio derives them from labels."""
    name = next((labels[k] for k in NAME_LABELS if k in labels), workload_name)
    revision = next((labels[k] for k in REVISION_LABELS if k in labels), "latest")
    return name, revision


def go_json(value):
    """JSON as Go's encoding/json writes it: compact, map keys sorted, <, > and & escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def pod_ports(ports):
    """ISTIO_META_POD_PORTS: the group's ports as Pod ports, by name ('' when none)."""
    if not ports:
        return ""
    # a Go struct: its fields in declaration order (name, containerPort, protocol), not sorted
    return "[%s]" % ",".join('{"name":%s,"containerPort":%d,"protocol":""}' % (go_json(n), int(ports[n]))
                             for n in sorted(ports))


def render_env(env):
    """``KEY=value`` lines, sorted, each value quoted for a shell (istio-start.sh sources the file)."""
    return "".join(sorted("%s=%s\n" % (k, shlex.quote(str(v))) for k, v in env.items())) or "\n"


def parse_env(text):
    """The mapping of a cluster.env (the lines render_env writes; comments and blanks skipped)."""
    env = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        parts = shlex.split(value) if value else []
        env[key] = parts[0] if parts else ""
    return env


# ---------------------------------------------------------------- the WorkloadGroup


def group_view(name, namespace, spec, annotations=None):
    """The WorkloadGroup as the files need it; defaults as istioctl fills them
    (no template: an empty one; no service account: ``default``)."""
    spec = spec or {}
    meta = spec.get("metadata") or {}
    template = dict(spec.get("template") or {})
    if not template.get("serviceAccount"):
        template["serviceAccount"] = "default"
    return {
        "name": name, "namespace": namespace,
        "annotations": dict(annotations or {}),
        "metadata": {"labels": dict(meta.get("labels") or {}), "annotations": dict(meta.get("annotations") or {})},
        "template": template,
        "probe": spec.get("probe"),
    }


def group_of_object(obj):
    meta = obj.get("metadata") or {}
    return group_view(meta.get("name"), meta.get("namespace"), obj.get("spec"), meta.get("annotations"))


# ---------------------------------------------------------------- mesh config and proxy config


def _load_yaml(text, what):
    if yaml is None:  # pragma: no cover
        raise MeshError("PyYAML is needed to read %s" % what)
    try:
        data = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as e:
        raise MeshError("%s is not valid YAML: %s" % (what, e))
    if not isinstance(data, dict):
        raise MeshError("%s is not a mapping" % what)
    return data


def mesh_config(text, what="the mesh config"):
    return _load_yaml(text, what)


def cluster_id_of(values_text, what="the injector values"):
    """global.multiCluster.clusterName of the injector ConfigMap's ``values`` (JSON); '' when unset."""
    try:
        values = json.loads(values_text or "{}")
    except ValueError as e:
        raise MeshError("%s are not valid JSON: %s" % (what, e))
    multi = ((values.get("global") or {}).get("multiCluster") or {}) if isinstance(values, dict) else {}
    return multi.get("clusterName") or ""


def _merge_proxy_config(base, overlay):
    """``overlay`` (a proxy.istio.io/config annotation) over ``base``: its keys replace, and
    proxyMetadata merges key by key."""
    out = dict(base)
    for key, value in overlay.items():
        if key == "proxyMetadata" and isinstance(value, dict):
            out[key] = dict(out.get(key) or {}, **{k: str(v) for k, v in value.items()})
        else:
            out[key] = copy.deepcopy(value)
    return out


def proxy_config(mesh, group, cluster_id, istio_namespace="istio-system", revision="", dns_capture=True,
                 autoregister=False):
    """The proxy config mesh.yaml carries (``defaultConfig``), with the metadata the VM needs."""
    pc = copy.deepcopy(mesh.get("defaultConfig") or {})
    pc["proxyMetadata"] = {k: str(v) for k, v in (pc.get("proxyMetadata") or {}).items()}
    if is_revisioned(revision) and not pc.get("discoveryAddress"):
        pc["discoveryAddress"] = istiod_address(istio_namespace, revision)
    for annotations in (group["annotations"], group["metadata"]["annotations"]):
        if PROXY_CONFIG_ANNOTATION in annotations:
            what = "the %s annotation of WorkloadGroup %s/%s" % (PROXY_CONFIG_ANNOTATION, group["namespace"], group["name"])
            overlay = _load_yaml(annotations[PROXY_CONFIG_ANNOTATION], what)
            pc = _merge_proxy_config(pc, overlay)
    template = group["template"]
    labels = dict(group["metadata"]["labels"])
    labels.update(template.get("labels") or {})
    if group.get("probe"):
        pc["readinessProbe"] = copy.deepcopy(group["probe"])
    md = pc["proxyMetadata"]
    md["CANONICAL_SERVICE"], md["CANONICAL_REVISION"] = canonical_service(labels, group["name"])
    md["POD_NAMESPACE"] = group["namespace"]
    md["SERVICE_ACCOUNT"] = template["serviceAccount"]
    md["TRUST_DOMAIN"] = str(mesh.get("trustDomain") or "")
    md["ISTIO_META_CLUSTER_ID"] = cluster_id
    md["ISTIO_META_MESH_ID"] = str(pc.get("meshId") or "")
    md["ISTIO_META_NETWORK"] = str(template.get("network") or "")
    ports = pod_ports(template.get("ports") or {})
    if ports:
        md["ISTIO_META_POD_PORTS"] = ports
    md["ISTIO_META_WORKLOAD_NAME"] = group["name"]
    labels["service.istio.io/canonical-name"] = md["CANONICAL_SERVICE"]
    labels["service.istio.io/canonical-revision"] = md["CANONICAL_REVISION"]
    md["ISTIO_METAJSON_LABELS"] = go_json(labels)
    if dns_capture:
        md["ISTIO_META_DNS_CAPTURE"] = "true"
    if autoregister:
        md["ISTIO_META_AUTO_REGISTER_GROUP"] = group["name"]
    return pc


def exclude_ports(pc):
    """ISTIO_LOCAL_EXCLUDE_PORTS: ssh, Prometheus, the agent's health and status ports."""
    ports = "22,15090,15021"
    status = pc.get("statusPort")
    if status not in (15090, 15021):
        ports += ",%d" % int(status) if status else ",15020"
    return ports


def cluster_env(pc, group, istio_namespace="istio-system", revision="", internal_ip="", external_ip=""):
    """The variables of cluster.env: the proxy metadata and what the group and options add."""
    ports = [str(p) for p in (group["template"].get("ports") or {}).values()]
    env = dict(pc.get("proxyMetadata") or {})
    env.update({
        "ISTIO_INBOUND_PORTS": ",".join(ports) if ports else "*",
        "ISTIO_NAMESPACE": group["namespace"],
        "ISTIO_SERVICE": "%s.%s" % (group["name"], group["namespace"]),
        "ISTIO_SERVICE_CIDR": "*",
        "ISTIO_LOCAL_EXCLUDE_PORTS": exclude_ports(pc),
        "SERVICE_ACCOUNT": group["template"]["serviceAccount"],
    })
    if is_revisioned(revision):
        env["CA_ADDR"] = istiod_address(istio_namespace, revision)
    if internal_ip:
        env["ISTIO_SVC_IP"] = internal_ip
    elif external_ip:
        env["ISTIO_SVC_IP"] = external_ip
        env["REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"] = "true"
    return env


def mesh_yaml(pc):
    if yaml is None:  # pragma: no cover
        raise MeshError("PyYAML is needed to write mesh.yaml")
    return yaml.safe_dump({"defaultConfig": pc}, default_flow_style=False, sort_keys=True)


def hosts_file(address, istio_namespace="istio-system", revision=""):
    return "%s %s\n" % (address, istiod_host(istio_namespace, revision))


# ---------------------------------------------------------------- where the VM reaches istiod


def is_ip(value):
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def gateway_address(svc, ref, resolve):
    """(address, how) the VM reaches istiod at through the gateway Service ``svc`` (a dict;
    None when it does not exist): its first LoadBalancer IP, else a LoadBalancer hostname
    resolved with ``resolve(hostname) -> ip`` (it raises MeshError), else its first
    external IP.  MeshError naming the Service and the option to set when there is none."""
    hint = "; set istiod_address to the address the VM reaches istiod at"
    if svc is None:
        raise MeshError("the gateway Service %s does not exist (install_istio makes it with an east-west gateway)%s"
                        % (ref, hint), field="ingress_service")
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            return ing["ip"], "LoadBalancer IP of %s" % ref
        if ing.get("hostname"):
            return resolve(ing["hostname"]), "LoadBalancer hostname %s of %s" % (ing["hostname"], ref)
    external = (svc.get("spec") or {}).get("externalIPs") or []
    if external:
        return external[0], "external IP of %s" % ref
    raise MeshError("the gateway Service %s has no LoadBalancer address and no external IP yet%s"
                    % (ref, hint), field="ingress_service")


def split_service(value, istio_namespace):
    """``name`` or ``name.namespace`` -> (namespace, name)."""
    name, _sep, namespace = str(value).partition(".")
    return (namespace or istio_namespace), name


# ---------------------------------------------------------------- the token


def token_claims(token):
    """The payload of a JWT (not verified: the API server and istiod do that); None when unreadable."""
    if not token:
        return None
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def token_subject(namespace, service_account):
    return "system:serviceaccount:%s:%s" % (namespace, service_account)


def token_sa_uid(claims):
    """The UID of the ServiceAccount a Kubernetes token was issued for (None when it does not say)."""
    sa = ((claims or {}).get("kubernetes.io") or {}).get("serviceaccount") or {}
    return sa.get("uid") if isinstance(sa, dict) else None


def token_plan(token, now, renew_before, namespace, service_account, sa_uid=None):
    """(renew, reason, expires) for the token the controller holds (text or None).

    ``sa_uid``: the UID of the ServiceAccount as the cluster has it now (None: it does not
    exist yet); a token of another UID was issued for an earlier ServiceAccount of that name
    (deleted and made again, or a cluster built anew) and its signature is no longer accepted."""
    claims = token_claims(token)
    if token is None:
        return True, "no token yet", None
    if claims is None:
        return True, "the token is not a readable JWT", None
    if sa_uid is None:
        return True, "ServiceAccount %s/%s does not exist yet" % (namespace, service_account), claims.get("exp")
    if token_sa_uid(claims) not in (None, sa_uid):
        return True, "the token is of an earlier ServiceAccount %s/%s (uid %s, now %s)" % (
            namespace, service_account, token_sa_uid(claims), sa_uid), claims.get("exp")
    expires = claims.get("exp")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if claims.get("sub") != token_subject(namespace, service_account):
        return True, "the token is of %s, not of %s" % (claims.get("sub"), token_subject(namespace, service_account)), expires
    if TOKEN_AUDIENCE not in auds:
        return True, "the token's audience is not %s" % TOKEN_AUDIENCE, expires
    if not isinstance(expires, (int, float)):
        return True, "the token has no expiry", None
    left = expires - now
    if left <= renew_before:
        if left <= 0:
            return True, "the token expired %d s ago" % -left, expires
        return True, "the token expires in %d s (renewed %d s ahead)" % (left, renew_before), expires
    return False, "valid for %d s more" % left, expires


# ---------------------------------------------------------------- options


def validate(params):
    """Refuse bad options before anything is read or written (MeshError naming the option)."""
    group = params.get("workload_group") or {}
    name, namespace = group.get("name"), group.get("namespace")
    if not names.is_dns1123_subdomain(name or ""):
        raise MeshError("workload_group.name: %r is not a DNS-1123 subdomain" % (name,), field="workload_group")
    if not names.is_dns1123_label(namespace or ""):
        raise MeshError("workload_group.namespace: %r is not a DNS-1123 label" % (namespace,), field="workload_group")
    spec = group.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise MeshError("workload_group.spec: must be a mapping (a WorkloadGroup spec)", field="workload_group")
    sa = ((spec or {}).get("template") or {}).get("serviceAccount")
    if sa and not names.is_dns1123_subdomain(sa):
        raise MeshError("workload_group.spec.template.serviceAccount: %r is not a DNS-1123 subdomain" % (sa,),
                        field="workload_group")
    for field in ("internal_ip", "external_ip"):
        if params.get(field) and not is_ip(params[field]):
            raise MeshError("%s: %r is not an IP address" % (field, params[field]), field=field)
    if params.get("internal_ip") and params.get("external_ip"):
        raise MeshError("internal_ip and external_ip are mutually exclusive", field="internal_ip")
    lifetime = params.get("token_lifetime")
    if lifetime < MIN_TOKEN_LIFETIME:
        raise MeshError("token_lifetime: %d s is shorter than the %d s Kubernetes allows" % (lifetime, MIN_TOKEN_LIFETIME),
                        field="token_lifetime")
    renew = params.get("token_renew_before")
    if renew < 0 or renew >= lifetime:
        raise MeshError("token_renew_before: %d s must be at least 0 and less than token_lifetime (%d s)" % (renew, lifetime),
                        field="token_renew_before")
    if params.get("revision") and not names.is_dns1123_label(params["revision"]):
        raise MeshError("revision: %r is not a DNS-1123 label" % (params["revision"],), field="revision")


def file_diff(rel, before, after):
    """A diff entry for one file; the token's content never appears."""
    if rel in SECRET_FILES:
        return {"before_header": rel, "after_header": rel,
                "before": "(a token)\n" if before is not None else "",
                "after": "(a new token)\n"}
    return {"before_header": rel, "after_header": rel,
            "before": (before or b"").decode("utf-8", "replace"), "after": after.decode("utf-8", "replace")}
