# Shell pieces shared by benches/run and benches/ab (sourced, not run).
# They use the caller's LOADGEN, ADDR, PORT, RT and PID variables.

# SRV_RT and GEN_RT: command prefixes running the target and the generator
# under SCHED_FIFO when RT=1 and chrt is permitted; SCHED says which.
pick_scheduling() {
    SRV_RT=() GEN_RT=()
    if [[ "$RT" == 1 ]] && command -v chrt >/dev/null && chrt -f 1 true 2>/dev/null; then
        SRV_RT=(chrt -f 10) GEN_RT=(chrt -f 5)
        SCHED="SCHED_FIFO (chrt)"
    else
        SCHED="ordinary scheduling"
    fi
}

# Stop the process in PID, if any, and forget it.
cleanup() { if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; PID=; }

wait_up() { # wait_up server|echo: wait until the target answers on $ADDR
    for _ in $(seq 100); do
        if [[ "$1" == server ]]; then
            "$LOADGEN" stats --target "$ADDR" --timeout-ms 100 >/dev/null 2>&1 && return 0
        else
            # the echo floor: any datagram comes back
            python3 - "$PORT" <<'PY' && return 0
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
s.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
try: s.recvfrom(64); sys.exit(0)
except OSError: sys.exit(1)
PY
        fi
        sleep 0.1
    done
    echo "$(basename "$0"): $1 did not come up on $ADDR" >&2
    return 1
}
