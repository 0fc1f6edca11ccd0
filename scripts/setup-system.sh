#!/usr/bin/env bash
# System packages flowscope and its tests use: tshark (cross-checks), chromium (report.pdf,
# and the test that opens report.html). As root: install them with apt-get.
# Otherwise: name what is missing; the tests that need it skip with the reason.
set -u
pkgs=(tshark tcpreplay iproute2 chromium)  # tshark brings dumpcap; tcpreplay + ip: live tests; chromium: report.pdf
missing=()
for p in "${pkgs[@]}"; do
  # installed, not merely known (a removed package keeps "deinstall ok config-files")
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "setup-system: apt-get could not install: ${missing[*]} (tests that need them will skip)"
else
  echo "setup-system: not root; missing system packages: ${missing[*]} (tests that need them will skip)"
fi
exit 0
