#!/usr/bin/env bash
# Autobahn|Testsuite cases 1-13 (the original case files, run by the `kosoku` package from PyPI)
# against the `echo` example, built in release mode (the compression cases push megabytes through
# deflate, which takes minutes unoptimised). Three runs:
#   1. the server, permessage-deflate off (WS_DEFLATE=off): cases 1-10;
#   2. the server, permessage-deflate on: cases 1-13, with WS_DEFLATE_THRESHOLD=0 so that every
#      message is compressed;
#   3. the client (`wsgrpc::client`, tests/ws_conformance_client.rs) against kosoku's fuzzing
#      server: cases 1-13, deflate on, threshold 0. (With the default 64-byte threshold the 16-byte messages of 12.x.1/13.x.1 go out
#      uncompressed, which RFC 7692 section 6.1 allows, but kosoku 0.1.0 then hands its case code
#      a str, and the case errors with "Strings must be encoded before hashing".)
# Every case must come back OK or INFORMATIONAL (no NON-STRICT, UNIMPLEMENTED, FAILED or ERROR),
# for the behaviour and the closing behaviour alike; anything else fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/autobahn-venv
if [ ! -x "$venv/bin/kosoku" ]; then
  python3 -m venv "$venv"
  timeout 300 "$venv/bin/pip" install -q --disable-pip-version-check kosoku
fi
# The same feature set as the client run below, so both share one release build of the crate and
# its dependencies.
cargo build --release --all-features --example echo

check() { # report-dir expected-case-count
  "$venv/bin/python" - "$1" "$2" <<'PY'
import collections, json, sys
report, expected = sys.argv[1], int(sys.argv[2])
index = json.load(open(f"{report}/index.json"))
verdicts, bad = collections.Counter(), []
for cases in index.values():
    for case, result in cases.items():
        pair = (result["behavior"], result["behaviorClose"])
        verdicts[pair] += 1
        if not set(pair) <= {"OK", "INFORMATIONAL"}:
            bad.append(f"{case}: {pair[0]}/{pair[1]} {result.get('result', '')}")
total = sum(verdicts.values())
print(f"{report}: {total} cases, " + ", ".join(f"{b}/{c}: {n}" for (b, c), n in sorted(verdicts.items())))
if bad:
    print("\n".join(sorted(bad)), file=sys.stderr)
    sys.exit(f"{len(bad)} Autobahn cases are not OK or INFORMATIONAL")
if total != expected:
    sys.exit(f"expected {expected} Autobahn cases, the report has {total}")
PY
}

run() { # name expected-cases env... -- kosoku args...
  local name=$1 expected=$2; shift 2
  local env=()
  while [ "$1" != "--" ]; do env+=("$1"); shift; done
  shift
  local port report=target/autobahn/$name
  port=$((20000 + RANDOM % 20000))
  rm -rf "$report"
  env "${env[@]}" RUST_LOG=error target/release/examples/echo "127.0.0.1:$port" >/dev/null &
  local server=$!
  trap 'kill $server 2>/dev/null || true' RETURN
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  timeout 900 "$venv/bin/kosoku" -p 2 -o "$report" "$@" "ws://127.0.0.1:$port/ws" >/dev/null
  check "$report" "$expected"
}

run plain 301 WS_DEFLATE=off -- -x '12.*' -x '13.*'
run deflate 517 WS_DEFLATE_THRESHOLD=0 --

# The client: kosoku serves the cases, the ignored test connects to each.
cargo test --release --all-features --test ws_conformance_client --no-run
port=$((20000 + RANDOM % 20000))
report=target/autobahn/client
rm -rf "$report"
timeout 900 "$venv/bin/kosoku" -m fuzzingserver -o "$report" "127.0.0.1:$port" >/dev/null &
fuzzing=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
AUTOBAHN_SERVER="ws://127.0.0.1:$port" timeout 900 cargo test --release --all-features \
  --test ws_conformance_client -- --ignored --quiet
# kosoku writes the report when the client asks (updateReports), then exits.
wait "$fuzzing"
check "$report" 517
