# tests/servers/lib.sh: small shell helpers shared by the scripts that start real servers for the
# tests and benchmarks (kafka.sh, and any other server script). Source it; every function
# returns non-zero with a message on stderr when it cannot do what it says.

# tj_free_port: prints a TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
tj_free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# tj_wait_port PORT SECONDS [PID]: waits until 127.0.0.1:PORT accepts a connection. Fails after
# SECONDS, or at once when PID (the server that should open it) has exited.
tj_wait_port() {
  local port=$1 secs=$2 pid=${3:-} end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "servers: process $pid exited before 127.0.0.1:$port accepted connections" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "servers: nothing accepted connections on 127.0.0.1:$port within ${secs}s" >&2
  return 1
}

# tj_start PIDFILE LOGFILE CMD...: starts CMD in the background, in its own session (setsid, so
# a Ctrl-C of the caller's terminal does not reach it), stdout and stderr appended to LOGFILE,
# and writes its pid to PIDFILE. Prints the pid.
tj_start() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"
  echo "$pid"
}

# tj_stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 20) if still alive.
# Waits until the process is gone. Only that pid is signalled.
tj_stop_pid() {
  local pid=$1 secs=${2:-20} end
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "servers: $pid still alive ${secs}s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  return 0
}

# tj_stop_pidfile PIDFILE [SECONDS]: tj_stop_pid on the pid PIDFILE holds, then removes it.
tj_stop_pidfile() {
  [ -f "$1" ] || return 0
  tj_stop_pid "$(cat "$1")" "${2:-20}"
  rm -f "$1"
}

# tj_user NAME: makes sure a system user NAME exists (for servers that refuse to run as root);
# prints its name.
tj_user() {
  local name=$1
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$name" ||
      { echo "servers: cannot create user $name" >&2; return 1; }
  fi
  echo "$name"
}

# tj_as_user NAME CMD...: runs CMD as NAME when we are root (setpriv, no login shell), else as
# ourselves.
tj_as_user() {
  local name=$1
  shift
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid="$name" --regid="$name" --init-groups -- "$@"
  else
    "$@"
  fi
}
