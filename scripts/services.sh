#!/usr/bin/env bash
# The three services Whistle needs on one box: RabbitMQ (5672), Redis (6379) and a
# CouchDB-API server (5984; pouchdb-server from node_modules/, since CouchDB is not
# packaged for Debian).
#
#   scripts/services.sh up            start whatever is not already answering
#   scripts/services.sh down          stop what this checkout started (pouchdb-server only)
#   scripts/services.sh status        one line per service; exit 1 if any is down
#   scripts/services.sh vhost NAME    ensure a RabbitMQ vhost with full rights for guest
#   scripts/services.sh tools         install chromium (Flower test), wrk (benchmarks) and
#                                     kamailio (balancer config check) if missing
#
# Why "check the port first": the services are shared. A RabbitMQ or Redis run by the
# system (or a pouchdb-server started by another checkout) is used as it is, never
# restarted or reconfigured; only a port that does not answer makes us start something.
# RabbitMQ and Redis are installed with apt only when their binaries are missing.
#
# Environment: RABBITMQ_PORT, REDIS_PORT, COUCH_PORT (defaults 5672, 6379, 5984; the
# host is always 127.0.0.1) and SERVICES_TIMEOUT (seconds to wait for a start, 90).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOST=127.0.0.1
RABBITMQ_PORT=${RABBITMQ_PORT:-5672}
REDIS_PORT=${REDIS_PORT:-6379}
COUCH_PORT=${COUCH_PORT:-5984}
TIMEOUT=${SERVICES_TIMEOUT:-90}
POUCH_DIR=$ROOT/.pouchdb
POUCH_PID=$POUCH_DIR/pouchdb.pid
POUCH_LOG=$POUCH_DIR/pouchdb.log
REDIS_DIR=$ROOT/.run/redis
# rabbitmq-server and rabbitmqctl live in /usr/sbin, which a normal user's PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { printf '%s\n' "$*"; }

# fail SERVICE WHY HOW...: say which service failed and how to start it by hand.
fail() {
    local service=$1 why=$2
    shift 2
    {
        printf 'services: %s FAILED: %s\n' "$service" "$why"
        printf '  to start it by hand:\n'
        printf '    %s\n' "$@"
    } >&2
    exit 1
}

# as_root CMD...: run as root (directly, or through sudo when we are not root).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        say "services: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

port_open() {  # HOST PORT: does something accept TCP connections there?
    # shellcheck disable=SC2016  # $0/$1 belong to the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# wait_until SECONDS CMD...: poll CMD every half second; false when time runs out.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

APT_UPDATED=
JUST_INSTALLED=
# need_binary BINARY PACKAGE: install PACKAGE with apt only when BINARY is missing.
# Sets JUST_INSTALLED, because apt may start the service itself (systemd).
need_binary() {
    local binary=$1 package=$2
    JUST_INSTALLED=
    command -v "$binary" >/dev/null && return 0
    say "$package: '$binary' not found, installing it (apt-get install -y $package)"
    command -v apt-get >/dev/null \
        || fail "$package" "'$binary' is missing and apt-get is not available" \
                "install $package with your package manager"
    if [ -z "$APT_UPDATED" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
            || say "$package: apt-get update failed; trying the install anyway"
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
        || fail "$package" "apt-get install failed" "sudo apt-get install -y $package"
    command -v "$binary" >/dev/null \
        || fail "$package" "'$binary' still missing after apt-get install" \
                "sudo apt-get install -y $package"
    JUST_INSTALLED=1
}

# --- RabbitMQ -----------------------------------------------------------------------

rabbitmq_hint=("sudo rabbitmq-server -detached   (or: sudo systemctl start rabbitmq-server)"
               "sudo rabbitmqctl await_startup; logs in /var/log/rabbitmq/")

rabbitmq_up() {
    if port_open "$HOST" "$RABBITMQ_PORT"; then
        say "rabbitmq: already answering on $HOST:$RABBITMQ_PORT"
        return 0
    fi
    need_binary rabbitmq-server rabbitmq-server
    # apt may have just started it (systemd); give it a moment before starting another.
    if [ -n "$JUST_INSTALLED" ] && wait_until 10 port_open "$HOST" "$RABBITMQ_PORT"; then
        say "rabbitmq: answering on $HOST:$RABBITMQ_PORT"
        return 0
    fi
    say "rabbitmq: starting (rabbitmq-server -detached)"
    # -detached returns at once, whatever happens next: the port decides.
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_until "$TIMEOUT" port_open "$HOST" "$RABBITMQ_PORT" \
        || fail rabbitmq "not answering on $HOST:$RABBITMQ_PORT after ${TIMEOUT}s" \
                "${rabbitmq_hint[@]}"
    say "rabbitmq: answering on $HOST:$RABBITMQ_PORT"
}

# rabbitmq_vhost NAME: the vhost exists and guest may configure, write and read all of it.
rabbitmq_vhost() {
    local vhost=$1
    if as_root rabbitmqctl list_permissions -q -p "$vhost" 2>/dev/null | guest_has_all; then
        say "rabbitmq: vhost $vhost ready"
        return 0
    fi
    say "rabbitmq: creating vhost $vhost with full permissions for guest"
    # (grep without -q reads all its input: an early exit would SIGPIPE rabbitmqctl and,
    # with pipefail, turn a match into a failure.)
    if ! as_root rabbitmqctl list_vhosts -q name 2>/dev/null | grep -xF "$vhost" >/dev/null; then
        # A concurrent run may win the race; that is fine as long as the vhost exists.
        as_root rabbitmqctl add_vhost "$vhost" >/dev/null 2>&1 \
            || as_root rabbitmqctl list_vhosts -q name | grep -xF "$vhost" >/dev/null \
            || fail rabbitmq "cannot create vhost $vhost" "sudo rabbitmqctl add_vhost $vhost"
    fi
    as_root rabbitmqctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null \
        || fail rabbitmq "cannot grant guest on vhost $vhost" \
                "sudo rabbitmqctl set_permissions -p $vhost guest '.*' '.*' '.*'"
}

guest_has_all() {  # reads `rabbitmqctl list_permissions` output (tab-separated)
    awk -F'\t' '$1 == "guest" && $2 == ".*" && $3 == ".*" && $4 == ".*" { ok = 1 }
                END { exit !ok }'
}

# --- Redis --------------------------------------------------------------------------

redis_cmd=(redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT"
           --save "" --appendonly no --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log"
           --pidfile "$REDIS_DIR/redis.pid")

redis_up() {
    if port_open "$HOST" "$REDIS_PORT"; then
        say "redis: already answering on $HOST:$REDIS_PORT"
        return 0
    fi
    need_binary redis-server redis-server
    if [ -n "$JUST_INSTALLED" ] && wait_until 5 port_open "$HOST" "$REDIS_PORT"; then  # by apt
        say "redis: answering on $HOST:$REDIS_PORT"
        return 0
    fi
    say "redis: starting on $HOST:$REDIS_PORT (no persistence; log .run/redis/redis.log)"
    mkdir -p "$REDIS_DIR"
    "${redis_cmd[@]}" >/dev/null || true  # the daemon may still die after forking
    wait_until "$TIMEOUT" port_open "$HOST" "$REDIS_PORT" || {
        tail -n 20 "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
        local cmd
        printf -v cmd '%q ' "${redis_cmd[@]}"
        fail redis "not answering on $HOST:$REDIS_PORT after ${TIMEOUT}s" "mkdir -p $REDIS_DIR && $cmd"
    }
    say "redis: answering on $HOST:$REDIS_PORT"
}

# --- CouchDB API (pouchdb-server) ----------------------------------------------------

couch_answers() {
    curl -fsS -m 2 -o /dev/null "http://$HOST:$COUCH_PORT/" 2>/dev/null
}

pouchdb_pid() {  # prints the pid of the pouchdb-server this checkout started, if alive
    local pid
    [ -f "$POUCH_PID" ] || return 1
    pid=$(cat "$POUCH_PID")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep pouchdb-server >/dev/null && echo "$pid"
}

pouchdb_hint() {
    printf '%s\n' "cd $POUCH_DIR && nohup $ROOT/node_modules/.bin/pouchdb-server -p $COUCH_PORT -o $HOST -d $POUCH_DIR/data -c $POUCH_DIR/config.json -n >> $POUCH_LOG 2>&1 &" \
                  "(node_modules/ comes from 'npm install' in $ROOT)"
}

pouchdb_up() {
    if couch_answers; then
        say "couchdb: already answering on $HOST:$COUCH_PORT"
        return 0
    fi
    local bin=$ROOT/node_modules/.bin/pouchdb-server pid
    local -a hint
    mapfile -t hint < <(pouchdb_hint)
    if port_open "$HOST" "$COUCH_PORT"; then
        fail couchdb "port $COUCH_PORT is taken by something that does not answer HTTP" \
             "find it with: ss -ltnp 'sport = :$COUCH_PORT'"
    fi
    [ -x "$bin" ] || fail couchdb "$bin is missing (run 'make services', which runs npm install)" \
                          "${hint[@]}"
    command -v node >/dev/null || fail couchdb "node is not installed" "sudo apt-get install -y nodejs npm"

    mkdir -p "$POUCH_DIR/data"
    # pouchdb-server keeps config.json and its log file in its cwd unless told otherwise:
    # run it in .pouchdb/ and point its own log at the file that also gets its stdout.
    [ -f "$POUCH_DIR/config.json" ] || printf '{"log": {"file": "pouchdb.log"}}\n' > "$POUCH_DIR/config.json"
    rm -f "$POUCH_PID"
    local log_start
    log_start=$(( $(stat -c %s "$POUCH_LOG" 2>/dev/null || echo 0) + 1 ))
    say "couchdb: starting pouchdb-server on $HOST:$COUCH_PORT (data .pouchdb/data, log .pouchdb/pouchdb.log)"
    (
        cd "$POUCH_DIR"
        # setsid + nohup: its own session, so it outlives make and the terminal. The inner
        # shell writes its own pid and then becomes pouchdb-server (exec keeps the pid).
        # shellcheck disable=SC2016  # $$, $0, $1 belong to the inner shell
        setsid bash -c 'echo $$ > "$0"; log=$1; shift; exec nohup "$@" >> "$log" 2>&1 < /dev/null' \
            "$POUCH_PID" "$POUCH_LOG" "$bin" -p "$COUCH_PORT" -o "$HOST" \
            -d "$POUCH_DIR/data" -c "$POUCH_DIR/config.json" -n &
    )
    local deadline=$((SECONDS + TIMEOUT))
    until couch_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -c "+$log_start" "$POUCH_LOG" | tail -n 20 >&2 || true
            fail couchdb "pouchdb-server not answering on $HOST:$COUCH_PORT after ${TIMEOUT}s (if it is hung, 'make stop-services' stops it)" \
                 "${hint[@]}"
        fi
        if [ -f "$POUCH_PID" ] && ! pouchdb_pid >/dev/null && ! couch_answers; then
            tail -c "+$log_start" "$POUCH_LOG" | tail -n 20 >&2 || true
            fail couchdb "pouchdb-server exited (log above, full log $POUCH_LOG)" "${hint[@]}"
        fi
        sleep 0.5
    done
    if pid=$(pouchdb_pid); then
        say "couchdb: pouchdb-server answering on $HOST:$COUCH_PORT (pid $pid)"
    else  # another checkout's server took the port first; ours exited. Use theirs.
        rm -f "$POUCH_PID"
        say "couchdb: answering on $HOST:$COUCH_PORT (started elsewhere)"
    fi
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

pouchdb_down() {
    local pid
    if ! pid=$(pouchdb_pid); then
        rm -f "$POUCH_PID"
        say "couchdb: no pouchdb-server started by this checkout is running; nothing to stop"
        return 0
    fi
    say "couchdb: stopping pouchdb-server (pid $pid)"
    kill -TERM "$pid"
    if ! wait_until 10 pid_gone "$pid"; then
        say "couchdb: pouchdb-server ignored SIGTERM for 10s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$POUCH_PID"
}

# --- Kamailio (only its binary: tests/test_supervisor.py checks deploy/sip-lb with `kamailio -c`)

kamailio_binary() {
    need_binary kamailio kamailio
    # Debian's package leaves the daemon off under SysV init (RUN_KAMAILIO=no) but systemd
    # starts it on 5060, where it would answer SIP meant for a FreeSWITCH: stop what we started.
    if [ -n "$JUST_INSTALLED" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        as_root systemctl disable --now kamailio >/dev/null 2>&1 || true
        say "kamailio: installed for 'kamailio -c' only; its system service is disabled"
    fi
}

# --- commands -----------------------------------------------------------------------

status() {
    local rc=0 pid owner
    if port_open "$HOST" "$RABBITMQ_PORT"; then say "rabbitmq  up    $HOST:$RABBITMQ_PORT"
    else say "rabbitmq  DOWN  $HOST:$RABBITMQ_PORT"; rc=1; fi
    if port_open "$HOST" "$REDIS_PORT"; then say "redis     up    $HOST:$REDIS_PORT"
    else say "redis     DOWN  $HOST:$REDIS_PORT"; rc=1; fi
    if couch_answers; then
        if pid=$(pouchdb_pid); then owner="pouchdb-server started by this checkout, pid $pid"
        else owner="not started by this checkout"; fi
        say "couchdb   up    $HOST:$COUCH_PORT  ($owner)"
    else say "couchdb   DOWN  $HOST:$COUCH_PORT"; rc=1; fi
    return "$rc"
}

usage() {
    say "usage: $0 up|down|status|vhost NAME|tools" >&2
    exit 2
}

case "${1:-}" in
    up) need_binary curl curl; rabbitmq_up; redis_up; pouchdb_up ;;
    down) pouchdb_down ;;
    status) status ;;
    vhost) [ $# -eq 2 ] || usage; rabbitmq_vhost "$2" ;;
    # test and benchmark tools from Debian's packages, installed only when missing
    tools) need_binary chromium chromium; need_binary wrk wrk; kamailio_binary ;;
    *) usage ;;
esac
