#!/usr/bin/env bash
# Monitoring in five minutes: serve the bundled SmolLM2 behind an OpenAI-compatible API, capture
# its traffic through fmeval's proxy, make a baseline of normal traffic, inject drift (longer
# questions in French), and see the alarm fire and the report.
#
#   bash examples/monitoring/walkthrough.sh      (from the repository root, after `make install`)
#
# MODEL, SERVE_OPTIONS, WORK, SERVE_PORT and PROXY_PORT may be set in the environment.
set -euo pipefail
MODEL=${MODEL:-smollm2}
SERVE_OPTIONS=${SERVE_OPTIONS---max-new-tokens 40}
WORK=${WORK:-monitoring-demo}
SERVE_PORT=${SERVE_PORT:-8000}
PROXY_PORT=${PROXY_PORT:-8080}
BIN=${BIN:-.venv/bin}
export FMEVAL_STORE=$WORK/store.sqlite  # the schedules live here, beside nothing else of yours
if [ -e "$WORK" ] && [ ! -f "$WORK/.fmeval-walkthrough" ]; then  # only ever remove a folder it made
    echo "walkthrough: $WORK exists and is not a walkthrough's folder; set WORK to a new folder" >&2
    exit 2
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.fmeval-walkthrough"

# 1. The model, and the capture proxy in front of it: clients call :PROXY_PORT instead of :SERVE_PORT.
# shellcheck disable=SC2086  # the options are words
"$BIN/fmeval" serve "$MODEL" --port "$SERVE_PORT" $SERVE_OPTIONS > "$WORK/serve.log" 2>&1 &
SERVER=$!
"$BIN/fmeval" capture serve --upstream "http://127.0.0.1:$SERVE_PORT" --port "$PROXY_PORT" \
    --output "$WORK/capture" --name smollm2 > "$WORK/proxy.log" 2>&1 &
PROXY=$!
trap 'kill $SERVER $PROXY 2>/dev/null || true' EXIT
for port in "$SERVE_PORT" "$PROXY_PORT"; do
    until curl -sf "http://127.0.0.1:$port/v1/models" > /dev/null; do
        kill -0 "$SERVER" 2>/dev/null && kill -0 "$PROXY" 2>/dev/null || { cat "$WORK"/*.log; exit 2; }
        sleep 0.5
    done
done

# 2. Normal traffic, and its baseline.
"$BIN/python" examples/monitoring/traffic.py --url "http://127.0.0.1:$PROXY_PORT/v1" --count 40
"$BIN/fmeval" monitor llm-outputs baseline --data "$WORK/capture/smollm2" -o "$WORK/baseline"
sleep 1
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 3. Drift: the application starts sending longer questions, in French.
"$BIN/python" examples/monitoring/traffic.py --url "http://127.0.0.1:$PROXY_PORT/v1" --count 40 --drift --seed 1
sleep 1
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# 4. A schedule (every minute) with an alarm, and its check of the drifted window run now, as CI would.
"$BIN/fmeval" monitor schedule create demo --baseline "$WORK/baseline" --capture "$WORK/capture/smollm2" \
    --cron "* * * * *" --output "$WORK/executions" --alarm "violations >= 1"
status=0
"$BIN/fmeval" monitor run demo --window "$START/$END" || status=$?
echo "fmeval monitor run exited with $status (1: the alarm is in ALARM)"

# 5. The report: executions, metrics over time with thresholds, violations.
"$BIN/fmeval" monitor report demo -o "$WORK/report.html"
[ "$status" -eq 1 ]
