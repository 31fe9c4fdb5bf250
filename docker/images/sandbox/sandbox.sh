#!/bin/bash
# The sandbox of a Cloud Run instance. When the emulator mounts its sockets, it
# makes the platform reachable from every container of the instance, as on
# Cloud Run:
#   - the metadata server at 169.254.169.254:80 (metadata.google.internal),
#     forwarded to /run/cloudrun-emulator/instance/metadata.sock (needs
#     CAP_NET_ADMIN to add the address to the loopback interface);
#   - each Cloud Run service URL http://127.0.0.1:PORT, forwarded to
#     /run/cloudrun-emulator/services/PORT.sock, also for services created
#     after the instance started (inotify).
# Ports listed in CLOUDRUN_EMULATOR_POD_PORTS (the instance's own) are left to
# the instance's containers. Once the metadata server answers inside the
# namespace and the service URLs of the moment are forwarded, it creates
# /run/cloudrun-emulator/instance/ready, which the emulator waits for before it
# starts the instance's containers. Without the mounts it only waits.
set -u
readonly INSTANCE=/run/cloudrun-emulator/instance
readonly SERVICES=/run/cloudrun-emulator/services
readonly METADATA_IP=169.254.169.254

if [[ ! -d $INSTANCE && ! -d $SERVICES ]]; then
    exec sleep infinity
fi

if [[ -S $INSTANCE/metadata.sock ]]; then
    if ip address add "$METADATA_IP/32" dev lo; then
        socat "TCP-LISTEN:80,bind=$METADATA_IP,fork,reuseaddr" "UNIX-CONNECT:$INSTANCE/metadata.sock" &
        until (exec 3<>"/dev/tcp/$METADATA_IP/80") 2>/dev/null; do
            sleep 0.01
        done
    else
        echo "sandbox: cannot add $METADATA_IP to the loopback interface; no metadata server" >&2
    fi
fi

if [[ ! -d $SERVICES ]]; then
    : >"$INSTANCE/ready"
    wait
    exit
fi

declare -A taken=()
for port in ${CLOUDRUN_EMULATOR_POD_PORTS:-}; do
    taken[$port]=pod
done

# forward NAME: serve 127.0.0.1:PORT from the socket NAME (PORT.sock), once.
forward() {
    local name=$1 port=${1%.sock}
    [[ $name == *.sock && $port =~ ^[0-9]+$ && -z ${taken[$port]:-} ]] || return 0
    taken[$port]=service
    socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$SERVICES/$name" &
}

# Watch first, then list, so that no socket created in between is missed.
exec 3< <(inotifywait --monitor --event create --format %f "$SERVICES" 2>&1)
while read -r line <&3; do
    [[ $line == "Watches established." ]] && break
done
for path in "$SERVICES"/*.sock; do
    [[ -S $path ]] && forward "${path##*/}"
done
[[ -d $INSTANCE ]] && : >"$INSTANCE/ready"
while read -r name <&3; do
    forward "$name"
done
