#!/usr/bin/env bash
# Runs the installed revoked.service's ExecStart the way systemd would, on a machine without
# systemd as PID 1 (a container, a CI runner), as far as plain tools allow. Used to follow
# docs/deploy.md's systemd path; run as root after its install steps:
#
#   tests/deploy/run-like-systemd.sh [/etc/systemd/system/revoked.service]
#
# Emulated: DynamicUser (an unused uid of systemd's dynamic range, no groups), StateDirectory
# (/var/lib/private/revoked, 0700, linked from /var/lib/revoked), LoadCredential (copies into
# /run/credentials/revoked.service, readable by that uid only), Environment=, UMask=0077,
# NoNewPrivileges, CapabilityBoundingSet= (empty), ProtectSystem=strict (/ read-only in a mount
# namespace, the state directory writable, /var/lib/private passable inside only), PrivateTmp (a tmpfs on /tmp), Type=notify (a
# NOTIFY_SOCKET whose messages are printed). Not emulated: SystemCallFilter, MemoryDenyWriteExecute,
# RestrictAddressFamilies, RestrictNamespaces, ProtectKernel*, ProtectProc, PrivateDevices,
# PrivateUsers, TimeoutStopSec (no seccomp or BPF tooling here).
# Stops revoked with SIGTERM when this script gets SIGINT or SIGTERM, as `systemctl stop` would.
set -euo pipefail
unit=${1:-/etc/systemd/system/revoked.service}
name=$(basename "$unit")
[ "$(id -u)" -eq 0 ] || { echo "run as root (it creates a user namespace of one uid)" >&2; exit 1; }

value() { sed -n "s/^$1=//p" "$unit"; }
uid=61999
state=/var/lib/private/$(value StateDirectory)
creds=/run/credentials/$name
exec_start=$(value ExecStart)

install -d -m 0700 /var/lib/private
install -d -m 0700 -o "$uid" -g "$uid" "$state"
ln -sfn "private/$(basename "$state")" "/var/lib/$(basename "$state")"
install -d -m 0500 -o "$uid" -g "$uid" "$creds"
while IFS= read -r line; do
  cname=${line%%:*}
  src=${line#*:}
  install -m 0400 -o "$uid" -g "$uid" "$src" "$creds/$cname"
done < <(value LoadCredential)

# In /run: the unit's /tmp is private.
notify=$(mktemp -d /run/revoked-notify.XXXXXX)/notify.sock
chmod 0755 "$(dirname "$notify")"
python3 - "$notify" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
import os; os.chmod(sys.argv[1], 0o777)
while True:
    print("notify:", s.recv(4096).decode().strip(), flush=True)
EOF
listener=$!
sleep 0.3

envs=(CREDENTIALS_DIRECTORY="$creds" STATE_DIRECTORY="/var/lib/$(basename "$state")" NOTIFY_SOCKET="$notify")
while IFS= read -r e; do
  envs+=("${e//%S//var/lib}")
done < <(value Environment)

# shellcheck disable=SC2086
# Inside the unit /var/lib/private (0700 root on the host) is passable: a 0755 tmpfs over it
# with only this unit's state directory bound in, as systemd's namespace shows it.
hold=$(mktemp -d /run/revoked-state.XXXXXX)
unshare --mount --propagation private -- sh -c '
  mount --bind "$1" "$2" &&
  mount -t tmpfs -o mode=0755 tmpfs /var/lib/private &&
  mkdir "$1" && mount --bind "$2" "$1" &&
  mount -o remount,bind,ro / &&
  mount -o remount,bind,rw "$1" &&
  mount -t tmpfs -o mode=1777 tmpfs /tmp &&
  shift 2 && exec "$@"' sh "$state" "$hold" \
  env -i PATH=/usr/local/bin:/usr/bin:/bin "${envs[@]}" \
  setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
    --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
  sh -c 'umask 0077 && exec "$@"' sh $exec_start &
revoked=$!
trap 'kill -TERM $revoked 2>/dev/null || true' INT TERM
set +e
wait $revoked
status=$?
if [ $status -gt 128 ] && kill -0 $revoked 2>/dev/null; then
  wait $revoked
  status=$?
fi
sleep 0.2
kill $listener 2>/dev/null
rmdir "$hold" 2>/dev/null || true
rm -rf "$(dirname "$notify")"
echo "revoked exited with status $status"
exit $status
