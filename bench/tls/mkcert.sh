#!/usr/bin/env bash
# bench/tls/mkcert.sh DIR CA_CRT ROUTE_HOST KEY_ALG -- the listener certificate every peer
# serves (idempotent): DIR/server.{key,crt} for DNS:ROUTE_HOST, an ECDSA P-256 (ec) or
# RSA 2048 (rsa) key, signed by the shared harness's test CA (lib/mkcerts.sh, key next to
# CA_CRT), and DIR/server.pem = cert + key for HAProxy's 'crt'.
set -euo pipefail
D=$1 CA=$2 NAME=$3 ALG=$4
[ -s "$D/server.pem" ] && exit 0
case "$ALG" in
  ec)  k=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1) ;;
  rsa) k=(-newkey rsa:2048) ;;
  *) echo "KEY_ALG must be ec or rsa" >&2; exit 2 ;;
esac
mkdir -p "$D"
openssl req -nodes "${k[@]}" -keyout "$D/server.key" -out "$D/server.csr" -subj "/CN=$NAME" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' \
  "$NAME" >"$D/ext.cnf"
openssl x509 -req -in "$D/server.csr" -CA "$CA" -CAkey "${CA%.crt}.key" -CAcreateserial -CAserial "$D/ca.srl" \
  -out "$D/server.crt" -days 3650 -extfile "$D/ext.cnf" 2>/dev/null
openssl verify -CAfile "$CA" "$D/server.crt" >/dev/null
cat "$D/server.crt" "$D/server.key" >"$D/server.pem.tmp" && chmod 600 "$D/server.pem.tmp" && mv "$D/server.pem.tmp" "$D/server.pem"
echo "[tls certs] created $D/server.crt ($ALG, SAN DNS:$NAME, signed by $CA)"
