#!/usr/bin/env bash
# Tries the container image as docs/operations.md shows it, with podman: the image refuses to
# listen beyond loopback without TLS and a token and says which variable takes them; with
# secrets owned by the image's uid (10001) it serves clients on the host, over TLS, with its
# data in a bind-mounted directory, and its HTTP probes and metrics; a key it cannot read is
# PERMISSION_DENIED naming the file and the uid. Run by hand (an image build takes minutes, more than CI gives it); as root.
#   tests/container/container_test.sh [image] [cli]
# image defaults to fidelis (podman build -t fidelis .), cli to build/clients/fidelis.
# GRPCURL, when set, also calls grpc.health.v1.Health/Check with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
image=${1:-fidelis}
cli=${2:-$root/build/clients/fidelis}
work=$(mktemp -d /tmp/fidelis-container-XXXXXX)
name=fidelis-test-$$
port=$(shuf -i 20000-40000 -n 1)
http_port=$((port + 1))
cleanup() { podman rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== --version"
podman run --rm "$image" fidelisd --version | tee "$work/version"
grep -q '^fidelisd [0-9.]* (commit ' "$work/version" || fail "no version line"

echo "== beyond loopback without TLS: refused, naming FIDELIS_ARGS"
if podman run --rm -e FIDELIS_LISTEN="0.0.0.0:$port" "$image" >"$work/refused" 2>&1; then
  fail "the image served beyond loopback without TLS"
fi
cat "$work/refused"
grep -q "refusing to listen on non-loopback address" "$work/refused" || fail "no refusal"
grep -q "FIDELIS_ARGS" "$work/refused" || fail "the refusal does not name FIDELIS_ARGS"

echo "== secrets and data owned by uid 10001, as documented"
mkdir -p "$work/secrets" "$work/data"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/secrets/key.pem" -out "$work/secrets/cert.pem" 2>/dev/null
openssl rand -hex 24 >"$work/secrets/admin.token"
chmod 0600 "$work/secrets/key.pem" "$work/secrets/admin.token"
args="--tls_cert_file=/secrets/cert.pem --tls_key_file=/secrets/key.pem"
args="$args --admin_token_file=/secrets/admin.token"

echo "== secrets the image's user cannot read (root's, mode 0600)"
if podman run --rm -e FIDELIS_LISTEN="0.0.0.0:$port" -v "$work/secrets:/secrets:ro" \
    -e FIDELIS_ARGS="$args" "$image" >"$work/unreadable" 2>&1; then
  fail "the image started with a key it cannot read"
fi
cat "$work/unreadable"
# The first secret read (the admin token, then the TLS key) is the one named.
grep -Eq "PERMISSION_DENIED: cannot read (token file /secrets/admin.token|TLS key /secrets/key.pem)" \
  "$work/unreadable" || fail "an unreadable secret is not PERMISSION_DENIED naming it"
grep -q "uid 10001" "$work/unreadable" || fail "the error does not name uid 10001"

chown -R 10001:10001 "$work/secrets" "$work/data"
podman run -d --name "$name" -e FIDELIS_LISTEN="0.0.0.0:$port" \
  -e FIDELIS_HTTP_LISTEN="0.0.0.0:$http_port" \
  -v "$work/secrets:/secrets:ro" -v "$work/data:/data" -e FIDELIS_ARGS="$args" "$image" >/dev/null
fidelis=("$cli" --server "localhost:$port" --tls-ca "$work/secrets/cert.pem"
         --token-file "$work/secrets/admin.token")
for _ in $(seq 100); do
  "${fidelis[@]}" projection list >/dev/null 2>&1 && break
  sleep 0.2
done
echo "== from the host, over TLS"
"${fidelis[@]}" projection list || { podman logs "$name"; fail "the host cannot reach the image"; }
"${fidelis[@]}" account open --number ACC-001 --holder "Ada Lovelace" --deposit 10.00 \
  --currency USD
if [ -n "${GRPCURL:-}" ]; then
  "$GRPCURL" -cacert "$work/secrets/cert.pem" -d '{"service": ""}' "localhost:$port" \
    grpc.health.v1.Health/Check | tee "$work/health"
  grep -q SERVING "$work/health" || fail "Health/Check did not answer SERVING"
fi
echo "== HTTP from the host: /readyz and /metrics"
curl -sf "http://127.0.0.1:$http_port/readyz" | tee "$work/ready"
grep -q SERVING "$work/ready" || fail "/readyz did not answer SERVING"
curl -sf "http://127.0.0.1:$http_port/metrics" >"$work/metrics"
grep -q '^fidelis_commands_total{method="OpenAccount",code="OK"} 1$' "$work/metrics" ||
  fail "/metrics does not count the account opened"
podman stop -t 10 "$name" >/dev/null
podman logs "$name" 2>&1 | tail -3
owner=$(stat -c %u "$work/data/CURRENT")
[ "$owner" = 10001 ] || fail "the data directory's files belong to uid $owner, not 10001"
echo "PASS"
