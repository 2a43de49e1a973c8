# bench/lib.sh: process handling shared by the benchmark scripts (sourced, not run).
# A script appends every pid it starts to PIDS and calls stop_started from its EXIT trap; it
# defines say() before sourcing this.

PIDS=()

# stop_pid PID: TERM, up to 10 s of grace, then KILL. Only for PIDs this script started.
stop_pid() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "pid $pid ignored SIGTERM for 10 s: sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

# Stops, newest first, every process in PIDS and their children (a program run under
# /usr/bin/time is its child, and time does not pass signals on), then reaps them.
stop_started() {
	local i pid child
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		for child in $(pgrep -P "$pid" || true); do
			stop_pid "$child"
		done
		stop_pid "$pid"
	done
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		wait "$pid" 2>/dev/null || true
	done
}
