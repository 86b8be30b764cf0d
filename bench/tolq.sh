# Sourced by bench/peers and bench/instructions: the Tolq-style callback
# both measure, and the checks HAProxy and callgate make on it, written once
# so the two benches compare the same configurations.

KEY=bench-key-0123456789
TOKEN=bench-token-0123456789

# tolq_material DIR CALLGATE: a throwaway certificate (cert.pem, key.pem,
# and both.pem for HAProxy), the 1 KiB callback (body.json), and its
# signature in SIG.
tolq_material() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
  cat "$1/cert.pem" "$1/key.pem" > "$1/both.pem"
  python3 -c 'import sys; head = b"{\"id\":8462,\"status\":\"finished\",\"padding\":\""; sys.stdout.buffer.write(head + b"x" * (1024 - len(head) - 2) + b"\"}")' > "$1/body.json"
  SIG=$("$2" sign --secret "$KEY" < "$1/body.json")
}

# HAProxy's frontend lines for callgate's checks: the source address, the
# token, and HMAC-SHA1 of the buffered body (hmac converter), compared
# case-insensitively as callgate does.
haproxy_checks() {
  cat <<HAPROXY
  option http-buffer-request
  http-request deny unless { src 127.0.0.1 }
  http-request deny unless { urlp(token) -m str $TOKEN }
  http-request set-var(txn.exp) req.body,hmac(sha1,$(printf %s "$KEY" | base64)),hex,lower
  http-request deny unless { req.hdr(X-Tolq-Signature),lower,strcmp(txn.exp) eq 0 }
HAPROXY
}

# callgate_route UPSTREAM_PORT: the route with the same checks.
callgate_route() {
  cat <<TOML
[[route]]
name = "tolq"
path = "/tolq/callback"
upstream = "http://127.0.0.1:$1/tolq/callback"
allow_ips = ["127.0.0.1"]
token = { secrets = ["$TOKEN"] }
hmac = { algorithm = "sha1", header = "X-Tolq-Signature", encoding = "hex", secrets = ["$KEY"] }
TOML
}
