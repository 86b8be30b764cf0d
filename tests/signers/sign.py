"""Sign a request the way a provider's own Python library does.

    python3 sign.py PROVIDER SECRET ID TIMESTAMP URL < body

Prints the headers the provider would send, `Name: value`, one a line.
PROVIDER: standard-webhooks (standardwebhooks), svix (svix, under the
webhook-* names it shares with Standard Webhooks), svix-headers (svix,
under its own svix-* names), twilio (twilio's
RequestValidator, form bodies), slack (slack_sdk's SignatureVerifier).
"""
import sys
from datetime import datetime, timezone
from urllib.parse import parse_qsl

provider, secret, msg_id, ts, url = sys.argv[1:6]
body = sys.stdin.buffer.read()
when = datetime.fromtimestamp(int(ts), tz=timezone.utc)

if provider == "standard-webhooks":
    from standardwebhooks.webhooks import Webhook

    sig = Webhook(secret).sign(msg_id, when, body.decode())
    print(f"webhook-id: {msg_id}\nwebhook-timestamp: {ts}\nwebhook-signature: {sig}")
elif provider == "svix":
    from svix.webhooks import Webhook

    sig = Webhook(secret).sign(msg_id, when, body.decode())
    print(f"webhook-id: {msg_id}\nwebhook-timestamp: {ts}\nwebhook-signature: {sig}")
elif provider == "svix-headers":
    # What Svix (and Clerk, Resend) send: its own header names.
    from svix.webhooks import Webhook

    sig = Webhook(secret).sign(msg_id, when, body.decode())
    print(f"svix-id: {msg_id}\nsvix-timestamp: {ts}\nsvix-signature: {sig}")
elif provider == "twilio":
    from twilio.request_validator import RequestValidator

    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sig = RequestValidator(secret).compute_signature(url, params)
    print(f"x-twilio-signature: {sig}\ni-twilio-idempotency-token: {msg_id}")
elif provider == "slack":
    from slack_sdk.signature import SignatureVerifier

    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    print(f"x-slack-request-timestamp: {ts}\nx-slack-signature: {sig}")
else:
    sys.exit(f"unknown provider {provider}")
