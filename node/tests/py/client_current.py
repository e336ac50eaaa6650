#!/usr/bin/env python3
"""The current Fail2BanSync client, as SEED-API.md describes it: reads
clientconfig.ini, fetches the blocked and allowed lists unpaged with gzip,
posts local bans in gzip-compressed batches of 1,000, and prints the
fail2ban-client calls it would make as JSON instead of running them.

Standard library only, so the tests need nothing but python3.

    client_current.py [--config clientconfig.ini] [--add FILE]

--add FILE: addresses (one a line) to report, standing for the bans this
host's Fail2Ban made since the last run.
"""

import argparse
import configparser
import gzip
import json
import os
import sys
import urllib.error
import urllib.request

BATCH = 1000
GZIP_OVER = 1024
TIMEOUT = 60


def load_config(path):
    config = configparser.ConfigParser()
    if not config.read(path):
        sys.exit(f"cannot read {path}")
    server = config["server"]
    return {
        "base": f"{server.get('protocol', 'http')}://{server['host']}:{server.get('port', '5000')}",
        "token": config["auth"]["token"],
        "jails": [j.strip() for j in config.get("fail2ban", "jails", fallback="sshd").split(",") if j.strip()],
    }


class Client:
    def __init__(self, config):
        self.config = config
        self.gzip_responses = 0
        self.gzip_requests = 0
        self.requests = 0

    def request(self, method, path, body=None):
        headers = {
            "Authorization": f"Bearer {self.config['token']}",
            "Accept-Encoding": "gzip",
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if len(data) > GZIP_OVER:
                data = gzip.compress(data)
                headers["Content-Encoding"] = "gzip"
                self.gzip_requests += 1
        req = urllib.request.Request(self.config["base"] + path, data=data, headers=headers, method=method)
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                raw = resp.read()
                encoding = resp.headers.get("Content-Encoding", "")
        except urllib.error.HTTPError as e:
            sys.exit(f"{method} {path}: HTTP {e.code}: {e.read()[:500]!r}")
        except urllib.error.URLError as e:
            sys.exit(f"{method} {path}: {e.reason}")
        if encoding == "gzip":
            raw = gzip.decompress(raw)
            self.gzip_responses += 1
        return json.loads(raw)

    def addresses(self, path):
        answer = self.request("GET", path)
        return [item["ip_address"] for item in answer.get("items", [])]

    def post(self, ips, jail):
        added = []
        for start in range(0, len(ips), BATCH):
            batch = ips[start : start + BATCH]
            body = {"ips": batch, "description": "banned by fail2ban", "jail": jail}
            answer = self.request("POST", "/add_ips", body)
            added.extend(answer.get("added_ips", []))
        return added


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--config", default=os.path.join(here, "clientconfig.ini"))
    parser.add_argument("--add", help="file of addresses to report, one a line")
    args = parser.parse_args()
    config = load_config(args.config)
    client = Client(config)

    added = []
    if args.add:
        with open(args.add) as f:
            local = [line.strip() for line in f if line.strip()]
        added = client.post(local, config["jails"][0])
    blocked = client.addresses("/get_ips")
    allowed = client.addresses("/get_allowed_ips")

    # The real client runs `fail2ban-client set JAIL banip IP` per address
    # and jail (and unbanip for allowed ones); this one prints them.
    print(json.dumps({
        "jails": config["jails"],
        "banip": blocked,
        "unbanip": allowed,
        "added": added,
        "requests": client.requests,
        "gzip_requests": client.gzip_requests,
        "gzip_responses": client.gzip_responses,
    }))


if __name__ == "__main__":
    main()
