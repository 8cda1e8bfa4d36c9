# Copyright: rackboot contributors
# Apache License 2.0 (see LICENSE)
"""Full Kubernetes manifests of the network stack: helm template, validation, images.

Controller-only code (the render lookup and filters, and the tests, import
it). ``helm_template`` runs the real helm on the real chart with exactly the
values, release name, namespace and Kubernetes version the install uses;
``Validator`` checks every rendered object, built-in kinds against the strict
Kubernetes JSON schemas (unknown fields fail) and custom resources against
their CRDs; ``images`` lists every image a manifest would pull, including the
ones named in ConfigMaps; ``mirror_values`` points every image repository a
chart declares at a local registry.
"""

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile

import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ENV_HELM = "RACKBOOT_HELM"
HELM_TIMEOUT = 300


class RenderError(Exception):
    """A chart that cannot be rendered or a manifest that is invalid: one message per problem."""


# ----------------------------------------------------------------------------
# helm
# ----------------------------------------------------------------------------
def helm_binary(explicit=None):
    """The helm to run: ``explicit`` (rackboot_helm_binary), $RACKBOOT_HELM, the
    one scripts/install-helm put in .venv/bin, else helm on PATH."""
    for cand, why in ((explicit, "rackboot_helm_binary"), (os.environ.get(ENV_HELM), ENV_HELM),
                      (os.path.join(REPO, ".venv", "bin", "helm"), None)):
        if cand:
            if os.access(cand, os.X_OK):
                return cand
            if why:
                raise RenderError("%s=%s is not an executable helm" % (why, cand))
    found = shutil.which("helm")
    if not found:
        raise RenderError("no helm found: run scripts/install-helm (installs the pinned helm into the checkout's "
                          ".venv/bin, or with VENV/bin/python into VENV/bin), or set rackboot_helm_binary / %s "
                          "to your own helm" % ENV_HELM)
    return found


def helm_template(chart, release, namespace, kube_version, values, helm=None, repo_url=None, version=None):
    """``helm template`` of a chart: a local directory or archive, ``oci://``
    reference or chart name in ``repo_url`` (those two need ``version`` and the
    network). Returns the manifest text."""
    remote = repo_url or chart.startswith("oci://")
    if not remote and not os.path.exists(chart):
        raise RenderError("chart %s of release %s does not exist" % (chart, release))
    with tempfile.TemporaryDirectory(prefix="rackboot-helm-") as tmp:
        vfile = os.path.join(tmp, "values.yaml")
        with open(vfile, "w", encoding="utf-8") as f:
            # JSON is YAML; it also takes Ansible's tagged dict/str types.
            json.dump(values or {}, f, sort_keys=True)
        # HELM_* dirs in the scratch folder: no repository config or cache of
        # the operator's is read, and nothing is written to their home.
        env = dict(os.environ, HELM_CACHE_HOME=os.path.join(tmp, "cache"),
                   HELM_CONFIG_HOME=os.path.join(tmp, "config"), HELM_DATA_HOME=os.path.join(tmp, "data"))
        cmd = [helm_binary(helm), "template", release, chart, "--namespace", namespace,
               "--kube-version", str(kube_version), "--include-crds", "-f", vfile]
        if repo_url:
            cmd += ["--repo", repo_url]
        if remote and version:
            cmd += ["--version", str(version)]
        got = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT, check=False)
    if got.returncode:
        raise RenderError("helm template %s (%s) failed: %s" % (release, chart, got.stderr.strip()))
    return got.stdout


def _drop_nulls(node):
    if isinstance(node, dict):
        return {k: _drop_nulls(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_nulls(v) for v in node]
    return node


def documents(text):
    """The objects of a multi-document manifest, nulls dropped (the API server ignores them)."""
    return [_drop_nulls(d) for d in yaml.load_all(text, Loader=_LOADER) if d]


def dump(docs):
    """One multi-document YAML text, keys sorted: byte-stable for the same objects."""
    return "".join("---\n" + yaml.dump(d, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, width=1000)
                   for d in docs)


def redact_secrets(docs):
    """Secrets a chart generates (Kube-OVN's OVN TLS pair, webhook certificates)
    with their values emptied: keys never land in the artifacts, and a render
    is byte-identical although helm makes new ones each time."""
    out = []
    for doc in docs:
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            doc = dict(doc, metadata=dict(doc.get("metadata") or {}))
            for field in ("data", "stringData"):
                if doc.get(field):
                    doc[field] = {k: "" for k in doc[field]}
            doc["metadata"]["annotations"] = dict(doc["metadata"].get("annotations") or {}, **{
                "rackboot.io/not-rendered": "values generated by helm at install time"})
        out.append(doc)
    return out


def _chart_file(chart, name):
    """(text of `name` in a chart directory or .tgz archive, or None)."""
    if os.path.isdir(chart):
        p = os.path.join(chart, name)
        return open(p, encoding="utf-8").read() if os.path.isfile(p) else None
    with tarfile.open(chart) as tgz:
        for member in tgz.getmembers():
            if member.name.split("/", 1)[-1] == name:
                return tgz.extractfile(member).read().decode("utf-8")
    return None


def _subcharts(chart):
    """(name, directory or archive path or bytes) of a chart directory's charts/."""
    sub = os.path.join(chart, "charts") if os.path.isdir(chart) else None
    if not sub or not os.path.isdir(sub):
        return []
    return [os.path.join(sub, n) for n in sorted(os.listdir(sub))]


def chart_defaults(chart):
    """The chart's own values.yaml, subcharts' values under their chart names."""
    if not os.path.exists(chart):
        raise RenderError("chart %s is not a local chart: a mirror registry (image_registry) needs the chart's "
                          "values.yaml, so use a local chart (path or archive) with it" % chart)
    values = yaml.safe_load(_chart_file(chart, "values.yaml") or "{}") or {}
    for sub in _subcharts(chart):
        meta = yaml.safe_load(_chart_file(sub, "Chart.yaml") or "{}") or {}
        if meta.get("name"):
            values.setdefault(meta["name"], {})
            values[meta["name"]] = {**chart_defaults(sub), **values[meta["name"]]}
    return values


# ----------------------------------------------------------------------------
# Images and registries
# ----------------------------------------------------------------------------
IMAGE_RE = re.compile(r"^(?:(?P<registry>[^/]+\.[^/]+|[^/]+:\d+|localhost)/)?(?P<path>[a-z0-9._/-]+)"
                      r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def parse_image(ref, library=True):
    """{registry, repository, tag, digest} of an image reference, Docker's defaults
    applied (``library=False`` for a repository prefix such as ``docker.io/kubeovn``)."""
    m = IMAGE_RE.match(ref or "")
    if not m:
        raise RenderError("%r is not an image reference" % ref)
    registry, path = m.group("registry") or "docker.io", m.group("path")
    if library and registry == "docker.io" and "/" not in path:
        path = "library/" + path
    return {"registry": registry, "repository": path, "tag": m.group("tag"), "digest": m.group("digest")}


def image_ref(parts):
    out = "%s/%s" % (parts["registry"], parts["repository"])
    if parts.get("tag"):
        out += ":" + parts["tag"]
    if parts.get("digest"):
        out += "@" + parts["digest"]
    return out


def mirror_image(ref, registry, library=True):
    """``ref`` pulled from ``registry`` instead: same path, tag and digest (a mirror made
    with ``skopeo copy --all`` or ``crane copy`` keeps the digests)."""
    parts = parse_image(ref, library)
    if not registry:
        return image_ref(parts)
    return image_ref(dict(parts, registry=registry.rstrip("/")))


def mirror_repository(repo, registry):
    """A repository value (no tag) moved to ``registry``; a bare name (Kube-OVN's
    ``kube-ovn``, relative to its registry address) stays as it is."""
    if not registry or not repo or "/" not in repo:
        return repo
    return mirror_image(repo, registry, library=False)


def mirror_values(defaults, registry):
    """Values that move every image repository the chart declares to ``registry``.

    Found in the chart's own defaults: each mapping with a ``repository``
    string (Cilium, MetalLB, frr-k8s, cozy-proxy) and each ``registry``
    mapping with an ``address`` (Kube-OVN's global registry, which also names
    the NAT gateway image in a ConfigMap). The render then checks that no image
    outside the mirror is left.
    """
    if not registry:
        return {}

    def walk(node):
        out = {}
        for key, value in node.items():
            if key == "repository" and isinstance(value, str) and value:
                out[key] = mirror_repository(value, registry)
            elif key == "registry" and isinstance(value, dict) and isinstance(value.get("address"), str):
                out[key] = {"address": mirror_repository(value["address"], registry)}
            elif isinstance(value, dict):
                sub = walk(value)
                if sub:
                    out[key] = sub
        return out
    return walk(defaults)


_CM_IMAGE = re.compile(r"""(?m)^\s*(?:-\s*)?["']?[\w-]*image["']?\s*[:=]\s*["']?([^\s"',]+)""", re.I)


def _pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {} if isinstance(spec.get("template"), dict) else {}


def images(docs):
    """Sorted unique images of the objects: every container, init container and
    ephemeral container, and image references in ConfigMap data."""
    found = set()
    for doc in docs:
        pod = _pod_spec(doc)
        for field in ("initContainers", "containers", "ephemeralContainers"):
            for c in pod.get(field) or []:
                if c.get("image"):
                    found.add(c["image"])
        if doc.get("kind") == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                refs = _CM_IMAGE.findall(str(value))
                if key.lower().endswith("image"):
                    refs.append(str(value).strip())
                for ref in refs:
                    if IMAGE_RE.match(ref) and (":" in ref or "@" in ref):
                        found.add(ref)
    return sorted(found)


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------
def crd_jsonschema(node, structural=True):
    """A CRD's structural openAPIV3Schema as JSON Schema in which unknown fields
    are errors (the API server prunes or, with strict field validation,
    rejects them: either way a typo would be lost). Inside allOf/anyOf/oneOf/not
    a schema only validates values and prunes nothing."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: crd_jsonschema(v, structural) for k, v in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = crd_jsonschema(value, structural)
        elif key == "not":
            out[key] = crd_jsonschema(value, False)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_jsonschema(v, False) for v in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if structural and "properties" in node and "additionalProperties" not in node and \
            not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def _path(error):
    out = ""
    for part in error.absolute_path:
        out += "[%d]" % part if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top)"


_VALIDATORS = {}


def validator():
    """The Validator of the pinned schemas and CRDs, built once per process."""
    if "pinned" not in _VALIDATORS:
        _VALIDATORS["pinned"] = Validator(upstream.path("kubernetes_strict_schemas"), upstream.crds())
    return _VALIDATORS["pinned"]


class Validator:
    """Validates objects: built-in kinds against the strict Kubernetes schemas of
    one release, custom resources against the served versions of their CRDs."""

    def __init__(self, strict_dir, crds):
        import jsonschema
        import referencing
        import referencing.jsonschema
        self._jsonschema = jsonschema
        resources, self.builtin = [], {}
        for name in sorted(os.listdir(strict_dir)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(strict_dir, name), encoding="utf-8") as f:
                schema = json.load(f)
            resources.append((schema["$id"], referencing.jsonschema.DRAFT202012.create_resource(schema)))
            props = schema.get("properties") or {}
            kinds, versions = (props.get("kind") or {}).get("enum"), (props.get("apiVersion") or {}).get("enum")
            if kinds and versions:
                self.builtin[(versions[0], kinds[0])] = schema
        self._registry = referencing.Registry().with_resources(resources)
        self.crds = {}
        self.add_crds(crds)
        self._cache = {}

    def add_crds(self, crds):
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served") and version.get("schema"):
                    key = ("%s/%s" % (spec["group"], version["name"]), spec["names"]["kind"])
                    self.crds.setdefault(key, crd_jsonschema(version["schema"]["openAPIV3Schema"]))

    def _validator(self, key):
        if key not in self._cache:
            if key in self.builtin:
                self._cache[key] = self._jsonschema.Draft202012Validator(self.builtin[key], registry=self._registry)
            elif key in self.crds:
                self._cache[key] = self._jsonschema.Draft7Validator(self.crds[key])
            else:
                self._cache[key] = None
        return self._cache[key]

    def problems(self, docs, component):
        """One line per problem: component, kind, namespace/name, field path, reason."""
        out = []
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            meta = doc.get("metadata") or {}
            name = "%s/%s" % (meta["namespace"], meta.get("name")) if meta.get("namespace") else meta.get("name")
            where = "%s: %s %s" % (component, key[1], name)
            validator = self._validator(key)
            if validator is None:
                out.append("%s: no Kubernetes schema or CRD for apiVersion %s kind %s" % (where, key[0], key[1]))
                continue
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
                out.append("%s: %s: %s" % (where, _path(error), error.message[:300]))
        return out


def check(validator, docs, component):
    """Raise RenderError listing every problem of ``docs``."""
    problems = validator.problems(docs, component)
    if problems:
        raise RenderError("%d invalid object(s) in the %s manifests:\n%s"
                          % (len(problems), component, "\n".join(problems)))
    return docs



# ----------------------------------------------------------------------------
# The air-gap list
# ----------------------------------------------------------------------------
def platform_images(distribution, kubernetes_version, pins):
    """Images the nodes pull before any manifest: the control plane, etcd,
    CoreDNS, pause, and kube-vip (kubeadm) or the Talos installer and kubelet.
    ``pins`` holds the versions_* of roles/versions."""
    k8s = "v" + str(kubernetes_version).lstrip("v")
    pause = pins["pause"]
    if isinstance(pause, dict):                  # versions_pause: per Kubernetes minor
        minor = ".".join(k8s.lstrip("v").split(".")[:2])
        if minor not in pause:
            raise RenderError("no pause image pinned for Kubernetes %s: add %s to versions_pause" % (minor, minor))
        pause = pause[minor]
    out = ["registry.k8s.io/%s:%s" % (c, k8s) for c in ("kube-apiserver", "kube-controller-manager",
                                                         "kube-scheduler")]
    out += ["registry.k8s.io/coredns/coredns:v%s" % pins["coredns"], "registry.k8s.io/pause:%s" % pause]
    if distribution == "talos":
        out += ["ghcr.io/siderolabs/installer:v%s" % str(pins["talos"]).lstrip("v"),
                "ghcr.io/siderolabs/kubelet:%s" % k8s,
                "gcr.io/etcd-development/etcd:v%s" % str(pins["etcd"]).split("-")[0]]
    else:
        out += ["registry.k8s.io/etcd:%s" % pins["etcd"],
                "ghcr.io/kube-vip/kube-vip:v%s" % str(pins["kube_vip"]).lstrip("v")]
    return sorted(out)


def chart_pins(names):
    """Name, version, URL and sha256 of the pinned charts: the archive's sha256,
    or for a chart directory the sha256 of its sorted ``sha256  path`` list."""
    import hashlib
    sources = upstream.manifest()
    out = []
    for name in names:
        src = sources[name]
        if "files" in src:
            listing = "".join("%s  %s\n" % (d, p) for p, d in sorted(src["files"].items()))
            digest, kind = hashlib.sha256(listing.encode()).hexdigest(), "directory (sha256 of the file list)"
        else:
            digest, kind = src["sha256"], "file"
        out.append({"name": name, "version": str(src["version"]), "url": src["url"], "sha256": digest,
                    "kind": kind})
    return out


def air_gap_list(manifest_texts, platform, charts, registry=None):
    """{images: [{image, registry, repository, tag, digest, used_by}], charts: [...]}:
    every image of the rendered manifests (``{component: text}``) and of the
    platform, de-duplicated, with where each is used; ``registry`` is the
    mirror they are pulled from (the platform images are listed under their
    upstream names with the mirror name to copy them to)."""
    used = {}
    for component, text in sorted(manifest_texts.items()):
        for ref in images(documents(text)):
            used.setdefault(ref, set()).add(component)
    for ref in platform:
        target = mirror_image(ref, registry) if registry else ref
        used.setdefault(target, set()).add("platform" if target == ref else "platform (mirror of %s)" % ref)
    out = []
    for ref in sorted(used):
        parts = parse_image(ref)
        out.append(dict(parts, image=ref, used_by=sorted(used[ref])))
    return {"registry": registry or None, "images": out, "charts": charts}


def images_txt(listing):
    """images.txt: one image per line (what `skopeo copy`/`crane copy` take), charts as comments."""
    lines = ["# Images rackboot's cluster pulls (rendered manifests and the platform)%s."
             % (", from the mirror %s" % listing["registry"] if listing["registry"] else "")]
    lines += [i["image"] for i in listing["images"]]
    lines.append("# Charts (name version sha256 url):")
    lines += ["# %s %s %s %s" % (c["name"], c["version"], c["sha256"], c["url"]) for c in listing["charts"]]
    return "\n".join(lines) + "\n"
