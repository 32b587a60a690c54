#!/usr/bin/env bash
# Java 17+ and Maven for the local Kafka broker, Chromium and its driver for the browser tests; installed from Debian's packages
# when missing (CI and fresh machines run as root). Python deps come from pyproject.
set -euo pipefail
need=()
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | sed -n 1p; }
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jre-headless); fi
if ! command -v mvn >/dev/null 2>&1; then need+=(maven); fi
# The web app's browser tests drive Debian's headless Chromium through its chromedriver (no browser download).
if ! command -v chromium >/dev/null 2>&1; then need+=(chromium); fi
if ! command -v chromedriver >/dev/null 2>&1; then need+=(chromium-driver); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "errstream needs: ${need[*]} (Java 17+ and Maven). Install them and re-run." >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
java -version 2>&1 | sed -n 1p
mvn -v 2>/dev/null | sed -n 1p
