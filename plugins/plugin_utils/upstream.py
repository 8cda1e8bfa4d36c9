# Copyright: rackboot contributors
# Apache License 2.0 (see LICENSE)
"""Upstream files (schemas, CRDs, Helm charts) by pin, never by copy.

`roles/versions/files/upstream.yml` names every upstream file rackboot reads,
with its URL, version and sha256. `path()` returns a file or directory in a
local cache and fills the cache first when needed: from a mirror directory
(`RACKBOOT_UPSTREAM_MIRROR`, else `../shared` beside the checkout when it
exists: how air-gapped sites and CI get them) or from the upstream URL. Every
byte is checked against the pinned sha256 on the way in and each time the
cache is used, so a tampered or truncated file never reaches a test or a
render.

Controller-only code: roles reach it through the `rackboot.metal.upstream`
lookup, tests and the CLI import it.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
MANIFEST = os.path.join(REPO, "roles", "versions", "files", "upstream.yml")
ENV_MIRROR = "RACKBOOT_UPSTREAM_MIRROR"
ENV_CACHE = "RACKBOOT_UPSTREAM_CACHE"
ENV_OFFLINE = "RACKBOOT_UPSTREAM_OFFLINE"
FETCH_TIMEOUT = 20


class UpstreamError(Exception):
    """One line an operator can act on: which file, where from, what to set."""


def manifest():
    with open(MANIFEST, encoding="utf-8") as f:
        return yaml.safe_load(f)["sources"]


def cache_dir():
    base = os.environ.get(ENV_CACHE)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "rackboot", "upstream")
    return base


def mirror_dir():
    """The mirror to copy from: the variable when set (even if wrong, so a
    typo is reported, not silently replaced), else ../shared when present."""
    env = os.environ.get(ENV_MIRROR)
    if env:
        return env
    beside = os.path.join(os.path.dirname(REPO), "shared")
    return beside if os.path.isdir(beside) else None


def _files(src):
    """(relative path inside the cache, upstream URL, sha256) of a source."""
    if "files" in src:
        return [(os.path.join(src["path"], rel), src["url"] + rel, digest)
                for rel, digest in src["files"].items()]
    return [(src["path"], src["url"], src["sha256"])]


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _store(dest, data_from):
    """Write atomically so an interrupted fill never leaves half a file."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            data_from(out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def _hint():
    return ("set %s to a directory holding rackboot's upstream files (a copy made with "
            "`scripts/fetch-upstream --export DIR` on a machine with internet)" % ENV_MIRROR)


def _fill_one(name, src, rel, url, digest, cache, mirror, offline):
    dest = os.path.join(cache, rel)
    if os.path.isfile(dest) and _sha256(dest) == digest:
        return "cached"
    if mirror:
        candidate = os.path.join(mirror, rel)
        if os.path.isfile(candidate):
            got = _sha256(candidate)
            if got != digest:
                raise UpstreamError(
                    "upstream file %s (%s %s) in the mirror %s has sha256 %s, the pin in %s is %s: "
                    "the mirror holds another version or a modified copy"
                    % (rel, name, src["version"], mirror, got, os.path.relpath(MANIFEST, REPO), digest))
            _store(dest, lambda out: shutil.copyfileobj(open(candidate, "rb"), out))
            return "mirror"
    if offline:
        raise UpstreamError(
            "upstream file %s (%s %s, %s) is not in the cache %s%s and fetching is off (%s): %s"
            % (rel, name, src["version"], url, cache,
               " nor in the mirror %s" % mirror if mirror else "", ENV_OFFLINE, _hint()))
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpstreamError(
            "upstream file %s (%s %s) is not in the cache%s and %s could not be fetched (%s): %s"
            % (rel, name, src["version"], " nor in the mirror %s" % mirror if mirror else "",
               url, reason, _hint()))
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise UpstreamError("upstream file %s fetched from %s has sha256 %s, the pin is %s: refused"
                            % (rel, url, got, digest))
    _store(dest, lambda out: out.write(data))
    return "fetched"


def ensure(names=None, progress=None):
    """Fill the cache for the named sources (all when None); return
    {"cached": n, "mirror": n, "fetched": n}. Raises UpstreamError."""
    sources = manifest()
    unknown = sorted(set(names or ()) - set(sources))
    if unknown:
        raise UpstreamError("unknown upstream source(s) %s; known: %s" % (", ".join(unknown), ", ".join(sources)))
    cache, mirror = cache_dir(), mirror_dir()
    if mirror and not os.path.isdir(mirror):
        raise UpstreamError("%s=%s is not a directory: %s" % (ENV_MIRROR, mirror, _hint()))
    offline = os.environ.get(ENV_OFFLINE, "").lower() in ("1", "true", "yes")
    counts = {"cached": 0, "mirror": 0, "fetched": 0}
    for name in names or sources:
        src = sources[name]
        got = {"cached": 0, "mirror": 0, "fetched": 0}
        for rel, url, digest in _files(src):
            got[_fill_one(name, src, rel, url, digest, cache, mirror, offline)] += 1
        for how, n in got.items():
            counts[how] += n
        if progress and (got["mirror"] or got["fetched"]):
            progress("%s %s: %d file(s) from the mirror, %d fetched"
                     % (name, src["version"], got["mirror"], got["fetched"]))
    return counts


def path(name):
    """Path of source `name` in the cache (file or directory), filled and verified."""
    ensure([name])
    return os.path.join(cache_dir(), manifest()[name]["path"])


def export(dest):
    """Copy every pinned file (verified) into `dest`: the mirror an air-gapped
    site or another checkout points RACKBOOT_UPSTREAM_MIRROR at."""
    ensure()
    cache = cache_dir()
    for src in manifest().values():
        for rel, _url, _digest in _files(src):
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(cache, rel), target)


def pin(mirror):
    """The manifest's sources with hashes recomputed from `mirror` (for a bump):
    directory sources list every file found under their path."""
    sources = manifest()
    for src in sources.values():
        base = os.path.join(mirror, src["path"])
        if "files" in src:
            found = {}
            for root, _dirs, files in os.walk(base):
                for f in files:
                    full = os.path.join(root, f)
                    found[os.path.relpath(full, base)] = _sha256(full)
            src["files"] = dict(sorted(found.items()))
        elif os.path.isfile(base):
            src["sha256"] = _sha256(base)
    return sources


def crds():
    """Every pinned CustomResourceDefinition, as loaded documents: Cilium's and
    MetalLB's CRD files, the Kube-OVN bundle inside its chart and the one in
    the Multus manifest."""
    import glob
    docs = []
    for name in ("cilium_crds", "metallb_crds"):
        for f in sorted(glob.glob(os.path.join(path(name), "**", "*.yaml"), recursive=True)):
            with open(f, encoding="utf-8") as fh:
                docs.extend(yaml.safe_load_all(fh))
    for f in (os.path.join(path("kube_ovn_chart"), "templates", "kube-ovn-crd.yaml"), path("multus_manifest")):
        with open(f, encoding="utf-8") as fh:
            docs.extend(yaml.safe_load_all(fh))
    return [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"]
