#!/usr/bin/env python3
"""confluent-kafka over SASL OAUTHBEARER, for tests/it/oauth.rs. The tokens
are signed by the test (a key whose public half is the node's JWKS file);
this script only hands them to the client. Prints one JSON document.

  koauth.py --bootstrap B --valid T --expired T --wrong-audience T --short T1,T2,...
"""

import argparse
import json
import time

from confluent_kafka import KafkaException, Producer

TIMEOUT = 20


def claims_exp(token):
    import base64
    body = token.split(".")[1]
    body += "=" * (-len(body) % 4)
    return json.loads(base64.urlsafe_b64decode(body))["exp"]


def conf(bootstrap, tokens, calls, claim_fresh=False):
    """claim_fresh: tell librdkafka the token is good for another minute
    whatever its exp says (librdkafka itself refuses to send a token it
    knows to be expired), so that the node's check is what is tested."""
    def oauth_cb(_config):
        calls.append(time.time())
        t = tokens[min(len(calls) - 1, len(tokens) - 1)]
        exp = float(claims_exp(t))
        return t, max(exp, time.time() + 60) if claim_fresh else exp
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "OAUTHBEARER", "oauth_cb": oauth_cb}


def produce_once(bootstrap, token):
    """One record: "ok", or "refused" when the login fails."""
    errors = []
    c = conf(bootstrap, [token], [], claim_fresh=True)
    c.update({"message.timeout.ms": 6000, "error_cb": lambda e: errors.append(e.name())})
    p = Producer(c)
    delivered = []
    p.produce("oauth-topic", b"v", on_delivery=lambda err, _m: delivered.append(err))
    p.flush(8)
    if delivered and delivered[0] is None:
        return "ok"
    return "refused"


def produce_through_reauth(bootstrap, tokens, seconds):
    """Produces for `seconds` with short-lived tokens: the client must
    re-authenticate on its connection (KIP-368) as each one runs out."""
    calls = []
    errors = []
    c = conf(bootstrap, tokens, calls)
    c.update({"message.timeout.ms": 10000, "linger.ms": 5})
    p = Producer(c)
    acked = 0
    end = time.time() + seconds

    def on_delivery(err, _m):
        nonlocal acked
        if err is None:
            acked += 1
        else:
            errors.append(err.name())

    while time.time() < end:
        p.produce("oauth-topic", b"r", on_delivery=on_delivery)
        p.poll(0.1)
    p.flush(TIMEOUT)
    return {"acked": acked, "failed": len(errors), "tokens_fetched": len(calls)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--expired", required=True)
    ap.add_argument("--wrong-audience", required=True)
    ap.add_argument("--short", required=True)
    ap.add_argument("--seconds", type=float, default=14)
    a = ap.parse_args()
    out = {}
    # First: the short-lived tokens were signed just before this started.
    try:
        r = produce_through_reauth(a.bootstrap, a.short.split(","), a.seconds)
    except KafkaException as e:
        r = {"acked": 0, "failed": f"exception: {e}", "tokens_fetched": 0}
    out["reauth_failed"] = r["failed"]
    out["reauth_acked_some"] = r["acked"] > 0
    out["reauth_tokens_fetched_more_than_one"] = r["tokens_fetched"] > 1
    for name, token in [("valid", a.valid), ("expired", a.expired),
                        ("wrong_audience", a.wrong_audience)]:
        try:
            out[name] = produce_once(a.bootstrap, token)
        except KafkaException as e:
            out[name] = f"exception: {e}"
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except KafkaException as e:
        print(json.dumps({"error": str(e)}))
