#!/usr/bin/env python3
"""Publishes one event through a server-events publish API, with nothing but Python's standard library.

    PUBLISH_KEY=... python3 publish.py --url http://localhost:1337 --channel home \
        --selector cmd.chat --message '{"message": "hello from Python"}'

Prints the server's answer; on a refusal, prints its message and exits 1.
"""
import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def publish(url, api_key, target, selector, message=None, channel=None, idempotency_key=None, timeout=10):
    """POSTs one publish; returns the decoded answer, or raises urllib.error.HTTPError."""
    body = {"to": target, "selector": selector}
    if message is not None:
        body["message"] = message
    if channel is not None:
        body["channel"] = channel
    headers = {"Content-Type": "application/json", "X-Api-Key": api_key}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url.rstrip("/") + "/event-publish", data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:1337", help="the server, with its prefix if any")
    parser.add_argument("--key", default=os.environ.get("PUBLISH_KEY"), help="the API key (default: $PUBLISH_KEY)")
    to = parser.add_mutually_exclusive_group(required=True)
    to.add_argument("--all", action="store_true", help="every subscription")
    for name in ("channel", "subscription-id", "user-id", "user-name", "session-id"):
        to.add_argument("--" + name)
    parser.add_argument("--only-in", help="for a targeted publish: only the target's streams in this channel")
    parser.add_argument("--selector", required=True, help="e.g. cmd.chat")
    parser.add_argument("--message", help="JSON; text that is not JSON is sent as a string")
    parser.add_argument("--idempotency-key", help="a repeat with the same key within the window is dropped")
    args = parser.parse_args()
    if not args.key:
        parser.error("no API key: pass --key or set PUBLISH_KEY")

    if args.all:
        target = "all"
    else:
        kind, value = next((k, v) for k, v in (("channel", args.channel), ("subscriptionId", args.subscription_id), ("userId", args.user_id),
                                               ("userName", args.user_name), ("sessionId", args.session_id)) if v is not None)
        target = {kind: value}
    message = None
    if args.message is not None:
        try:
            message = json.loads(args.message)
        except ValueError:
            message = args.message
    try:
        answer = publish(args.url, args.key, target, args.selector, message, args.only_in, args.idempotency_key)
    except urllib.error.HTTPError as error:
        try:
            reason = json.load(error)["responseStatus"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = error.reason
        print(f"publish.py: {error.code} {reason}", file=sys.stderr)
        sys.exit(1)
    except urllib.error.URLError as error:
        print(f"publish.py: cannot reach {args.url}: {error.reason}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
