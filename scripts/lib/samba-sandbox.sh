# Sourced by scripts that run Samba's smbd in a throw-away sandbox on a
# loopback port (capture-vectors.sh, compare-samba.sh). Everything smbd
# writes stays under one work directory; smbd runs in its own session.

# samba_global_conf WORK PORT WORKGROUP NETBIOS LOGLEVEL: print the [global]
# lines every sandbox shares (callers append their own lines and shares).
samba_global_conf() {
    local work="$1" port="$2" workgroup="$3" netbios="$4" loglevel="$5"
    mkdir -p "$work"/{private,lock,state,cache,pid,log,ncalrpc}
    cat <<CONF
[global]
    server role = standalone
    workgroup = $workgroup
    netbios name = $netbios
    smb ports = $port
    interfaces = lo
    bind interfaces only = yes
    disable netbios = yes
    private dir = $work/private
    lock directory = $work/lock
    state directory = $work/state
    cache directory = $work/cache
    pid directory = $work/pid
    ncalrpc dir = $work/ncalrpc
    log file = $work/log/%m.log
    log level = $loglevel
    passdb backend = tdbsam:$work/private/passdb.tdb
    map to guest = never
    server min protocol = SMB2_02
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
CONF
}

# samba_start WORK CONF: start smbd in the foreground of its own session
# (smbd signals its whole process group when it stops; keep that group its
# own) and set SMBD_PID.
samba_start() {
    setsid smbd -F --no-process-group --debug-stdout -s "$2" >"$1/log/smbd.out" 2>&1 &
    SMBD_PID=$!
}

# samba_stop WORK PID: stop smbd and its per-connection children, then the
# samba-dcerpcd group it may have started on demand (which records its pid
# in the sandbox's pid directory).
samba_stop() {
    local work="$1" smbd_pid="$2" pidfile pid
    if [ -n "$smbd_pid" ]; then
        kill "$smbd_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$smbd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 -- "-$smbd_pid" 2>/dev/null || true
        wait "$smbd_pid" 2>/dev/null || true
    fi
    for pidfile in "$work"/pid/*.pid; do
        [ -f "$pidfile" ] || continue
        pid="$(head -c 16 "$pidfile" | tr -dc 0-9)"
        [ -n "$pid" ] && [ "$pid" != "$smbd_pid" ] || continue
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
}
