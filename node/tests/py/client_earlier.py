#!/usr/bin/env python3
"""The earlier Fail2BanSync client, as SEED-API.md describes it: pages
GET /get_ips?page=N&page_size=200, reads items[].ip_address (or
items[].ip), and stops at an empty page or once it has read `total`
addresses. Prints the addresses it would ban as JSON.

Standard library only, so the tests need nothing but python3.

    client_earlier.py [--config clientconfig.ini]
"""

import argparse
import configparser
import json
import os
import sys
import urllib.error
import urllib.request

PAGE_SIZE = 200
TIMEOUT = 60
MAX_PAGES = 100000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--config", default=os.path.join(here, "clientconfig.ini"))
    args = parser.parse_args()
    config = configparser.ConfigParser()
    if not config.read(args.config):
        sys.exit(f"cannot read {args.config}")
    server = config["server"]
    base = f"{server.get('protocol', 'http')}://{server['host']}:{server.get('port', '5000')}"
    token = config["auth"]["token"]

    ips, page, total = [], 1, None
    while page <= MAX_PAGES:
        url = f"{base}/get_ips?page={page}&page_size={PAGE_SIZE}"
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            sys.exit(f"GET {url}: HTTP {e.code}: {e.read()[:500]!r}")
        except urllib.error.URLError as e:
            sys.exit(f"GET {url}: {e.reason}")
        items = answer.get("items", [])
        if not items:
            break
        ips.extend(item.get("ip_address") or item.get("ip") for item in items)
        total = answer.get("total")
        if total is not None and len(ips) >= total:
            break
        page += 1

    print(json.dumps({"banip": ips, "pages": page, "total": total}))


if __name__ == "__main__":
    main()
