#!/usr/bin/env bash
# Installs the system programs camscan's tests use, when missing: nmap, iproute2 (ip netns), chromium
# (the HTML report is rendered in a real headless browser), rabbitmq-server (the scan agents' broker). Needs root and Debian's apt; otherwise says
# what is missing and exits 0, so that `make test` still runs (the tests that need a program then fail
# with a message naming it).
set -euo pipefail
need=()
command -v nmap >/dev/null 2>&1 || need+=(nmap)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] || need+=(rabbitmq-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "camscan: missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "camscan: installing ${need[*]} with apt-get" >&2
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
