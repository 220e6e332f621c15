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
import sys

import scim2_tester.filling as filling
from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# The demo connection provisions only users whose email domain is approved
# (example.com); scim2-tester invents random domains. Point its generated
# addresses at the approved domain; pinned to scim2-tester 0.5.2's source.
_source = inspect.getsource(filling)
_patched = _source.replace('@{uuid.uuid4()}.com"', '@example.com"')
assert _patched != _source, "scim2-tester's email generator changed; update this runner"
exec(compile(_patched, filling.__file__, "exec"), filling.__dict__)

# Checks that end in ERROR but do not apply to scimgate, with the reason.
NOT_APPLICABLE = {}


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
    unexplained = [r for r in failures if r.title not in NOT_APPLICABLE]
    print("scim2-tester results:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for result in results:
        if result.status not in (Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED):
            note = NOT_APPLICABLE.get(result.title, "")
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
