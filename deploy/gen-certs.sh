#!/usr/bin/env bash
# Throwaway PKI for trying MQTT over TLS: gen-certs.sh DIR writes
#   ca.pem ca.key               a CA for servers and devices
#   server.pem server.key       a server certificate for localhost and 127.0.0.1
#   device.pem device.key       a device certificate (CN=device-1) signed by the CA
# Needs openssl. Not for production: keys are unencrypted.
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -keyout ca.key -out ca.pem -subj "/CN=fleetcore local CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() {
  local name=$1 subj=$2 ext=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
    -out "$name.pem" -extfile <(printf '%s' "$ext") 2>/dev/null
  rm -f "$name.csr"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue device "/CN=device-1" "extendedKeyUsage=clientAuth"
echo "wrote $dir/{ca,server,device}.{pem,key}"
