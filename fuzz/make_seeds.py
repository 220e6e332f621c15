#!/usr/bin/env python3
"""Regenerates the seeds derived from the repository's IdP fixtures and
mapping files (fuzz/seeds/{patch,dialect,request,json_body,mapping_loader}/fx-*).
Hand-written seeds (filter, attr_path, the rest) are kept as they are.

Run from fuzz/: python3 make_seeds.py
"""
import glob
import hashlib
import json
import os
import re
import shutil
import urllib.parse

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(ROOT)
SEEDS = os.path.join(ROOT, "seeds")

# Must match fuzz/src/request.rs.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PREFIXES = [
    "/scim/v2/Users", "/scim/v2/Users/", "/scim/v2/Users?filter=",
    "/scim/v2/Users?attributes=", "/scim/v2/Users?excludedAttributes=",
    "/scim/v2/Users?startIndex=", "/scim/v2/Users?count=", "/scim/v2/Users/.search",
    "/scim/v2/Groups", "/scim/v2/Groups/", "/scim/v2/Groups?filter=",
    "/scim/v2/Groups/.search", "/scim/entra/v2/Users/", "/scim/entra/v2/Groups/",
    "/scim/okta/v2/Users/", "/scim/okta/v2/Groups?filter=", "/scim/onelogin/v2/Users/",
    "/scim/generic/v2/Users?filter=", "/scim/v2/Schemas/", "/scim/v2/ResourceTypes/",
    "/scim/v2/ServiceProviderConfig", "/scim/v2/.search", "/scim/v2/", "/",
]
USER_AGENT = {"entra": 1, "okta": 2}


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    digest = hashlib.sha1(data).hexdigest()[:10]
    with open(os.path.join(SEEDS, target, f"fx-{name}-{digest}"), "wb") as f:
        f.write(data)


def request_seed(vendor, method, path, body):
    # Serve every fixture through the auto connection; the User-Agent picks
    # the dialect. Decode the query so the harness re-encodes it.
    path = re.sub(r"^/scim/[a-z]+/v2", "", path)
    full = "/scim/v2" + urllib.parse.unquote(path)
    best = max((p for p in PREFIXES if full.startswith(p)), key=len, default="/")
    suffix = full[len(best):].encode()[:255]
    flags = (USER_AGENT.get(vendor, 0) << 5)  # valid token, scim+json
    head = bytes([METHODS.index(method), PREFIXES.index(best), flags, len(suffix)])
    payload = b"" if body is None else json.dumps(body).encode()
    return head + suffix + payload


for target in ("patch", "dialect", "request", "json_body", "mapping_loader"):
    for old in glob.glob(os.path.join(SEEDS, target, "fx-*")):
        os.remove(old)

for fixture in sorted(glob.glob(os.path.join(REPO, "tests/fixtures/idp/*.json"))):
    vendor = os.path.basename(fixture).split(".")[0]
    with open(fixture) as f:
        steps = json.load(f)["steps"]
    for step in steps:
        request = step["request"]
        method, body = request["method"], request.get("body")
        write("request", vendor, request_seed(vendor.split("-")[0], method, request["path"], body))
        if body is None:
            continue
        text = json.dumps(body, indent=1)
        write("dialect", vendor, text)
        write("json_body", vendor, json.dumps(body, ensure_ascii=False))
        if method == "PATCH":
            write("patch", vendor, text)

for mapping in sorted(glob.glob(os.path.join(REPO, "mappings/*/*.toml"))):
    name = os.path.basename(os.path.dirname(mapping)) + "-" + os.path.basename(mapping)[:-5]
    with open(mapping, "rb") as f:
        write("mapping_loader", name, f.read())
