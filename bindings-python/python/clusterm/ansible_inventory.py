"""Ansible dynamic inventory from a clusterm daemon.

    python -m clusterm.ansible_inventory --url http://127.0.0.1:9090 --list
    python -m clusterm.ansible_inventory --url ... --host NAME

Groups: one per host group (``service-master``, ...) and one per status
(``status_commissioned``, ...); globals are ``all`` vars; node vars are host vars.
``--url`` and ``--token`` default to ``CLUSTERM_URL`` and ``CLUSTERM_TOKEN`` so the
script can be given to ``ansible -i`` as is. The document is built in Rust.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

import clusterm


def main(argv: Optional[List[str]] = None) -> int:
    """Prints the inventory (``--list``) or one host's vars (``--host``)."""
    parser = argparse.ArgumentParser(
        prog="python -m clusterm.ansible_inventory",
        description="Ansible dynamic inventory built from clusterm's nodes.",
    )
    parser.add_argument("--url", default=os.environ.get("CLUSTERM_URL", "http://127.0.0.1:9090"))
    parser.add_argument("--token", default=os.environ.get("CLUSTERM_TOKEN"))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the whole inventory")
    mode.add_argument("--host", metavar="NAME", help="print one host's vars")
    args = parser.parse_args(argv)

    client = clusterm.Client(args.url, token=args.token)
    try:
        if args.list:
            doc = client.ansible_inventory()
        else:
            doc = clusterm.ansible_host_vars(client.node(args.host))
    except clusterm.ClustermError as e:
        print(f"clusterm inventory: {e}", file=sys.stderr)
        return 1
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
