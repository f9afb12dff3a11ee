#!/usr/bin/env bash
# A throw-away single-node Ceph (one monitor, one OSD keeping objects in memory, no auth between the
# daemons) and its RADOS Gateway on 127.0.0.1: a real S3 server for tests and benchmarks.
#   scripts/services/ceph-rgw.sh start       prints S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
#   scripts/services/ceph-rgw.sh stop        stops every daemon by PID and deletes the directory
#   scripts/services/ceph-rgw.sh stop-rgw    stops only the gateway (the S3 endpoint goes away, the data stays)
#   scripts/services/ceph-rgw.sh start-rgw   starts the gateway again
# Settings by environment: CEPH_DIR, RGW_PORT, MON_PORT (all required).
# Needs: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
set -euo pipefail
: "${CEPH_DIR:?set CEPH_DIR}" "${RGW_PORT:?set RGW_PORT}" "${MON_PORT:?set MON_PORT}"
ACCESS_KEY=sluicetestaccess
SECRET_KEY=sluicetestsecret
CONF="$CEPH_DIR/ceph.conf"
C=(-c "$CONF")
RGW_PIDFILE="$CEPH_DIR/run/client.rgw.local.pid"

fail() { echo "ceph-rgw: $*" >&2; exit 1; }

write_conf() {
  local fsid=$1
  cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$MON_PORT
ms bind msgr2 = false
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
mon warn on insecure global id reclaim allowed = false
run dir = $CEPH_DIR/run
admin socket = $CEPH_DIR/run/\$name.asok
log file = $CEPH_DIR/log/\$name.log
pid file = $CEPH_DIR/run/\$name.pid
keyring = $CEPH_DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
fatal signal handlers = false
[mon]
# Commit map changes fast (defaults 1 s / 0.05 s): the gateway creates its pools one by one at start.
paxos propose interval = 0.01
paxos min wait = 0.001
mon data = $CEPH_DIR/mon/\$cluster-\$id
[osd]
osd data = $CEPH_DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd op num shards = 1
osd op num threads per shard = 2
# The OSD is placed in the CRUSH map below: with auth=none its own start-up update races the monitor.
osd crush update on start = false
osd class update on start = false
[client.rgw.local]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $CEPH_DIR/rgw
rgw thread pool size = 64
rgw enable usage log = false
rgw dns name = localhost
rgw enable lc threads = false
rgw enable gc threads = false
CONF
}

start_rgw() {
  # Foreground (-f) as a background job, so a failed start (the port taken) shows at once.
  setsid radosgw "${C[@]}" -n client.rgw.local -f </dev/null >>"$CEPH_DIR/log/rgw.stderr" 2>&1 &
  local pid=$!
  echo "$pid" >"$RGW_PIDFILE"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || fail "radosgw exited at start (port $RGW_PORT taken?): $(tail -n 2 "$CEPH_DIR/log/rgw.stderr" | tr '\n' ' ')"
    curl -s "http://127.0.0.1:$RGW_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult && return 0
    sleep 0.1
  done
  fail "radosgw did not answer on port $RGW_PORT within 30 s (see $CEPH_DIR/log)"
}

start() {
  command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null \
    || fail "Ceph is not installed (apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd)"
  if ls "$CEPH_DIR"/run/*.pid >/dev/null 2>&1; then fail "daemons may still run from $CEPH_DIR: stop them first"; fi
  trap 'echo "ceph-rgw: start failed; logs in $CEPH_DIR/log" >&2; stop_daemons' ERR
  rm -rf "$CEPH_DIR"
  mkdir -p "$CEPH_DIR"/{run,log,mon,osd,rgw}
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"
  touch "$CEPH_DIR/keyring" # an empty keyring keeps the tools from reading /etc/ceph
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$MON_PORT]" "$CEPH_DIR/monmap" >/dev/null
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$CEPH_DIR/monmap" >/dev/null
  ceph-mon "${C[@]}" -i a || fail "ceph-mon did not start (port $MON_PORT taken?)"
  local up=0
  for _ in $(seq 1 100); do ceph "${C[@]}" --connect-timeout 2 mon stat >/dev/null 2>&1 && { up=1; break; }; sleep 0.2; done
  [ $up = 1 ] || fail "ceph-mon did not answer on port $MON_PORT"
  local osd_uuid osd_id
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  # Right after its first answer the monitor may still refuse commands for a moment ("EPERM:
  # problem getting command descriptions", seen on a loaded machine); `osd new` of one UUID is
  # idempotent, so it is simply asked again.
  osd_id=
  for _ in $(seq 1 50); do
    osd_id=$(ceph "${C[@]}" osd new "$osd_uuid" 2>>"$CEPH_DIR/log/osd-new.stderr") && break
    sleep 0.2
  done
  [ -n "$osd_id" ] || fail "the monitor refused to create the OSD: $(tail -n 1 "$CEPH_DIR/log/osd-new.stderr")"
  mkdir -p "$CEPH_DIR/osd/ceph-$osd_id"
  ceph "${C[@]}" osd crush add "osd.$osd_id" 1.0 host=localhost root=default >/dev/null 2>&1
  ceph-osd "${C[@]}" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
  ceph-osd "${C[@]}" -i "$osd_id" 2>>"$CEPH_DIR/log/osd.stderr"
  up=0
  for _ in $(seq 1 150); do ceph "${C[@]}" osd dump 2>/dev/null | grep -q "^osd.$osd_id up" && { up=1; break; }; sleep 0.2; done
  [ $up = 1 ] || fail "the OSD did not come up (see $CEPH_DIR/log)"
  start_rgw
  radosgw-admin "${C[@]}" user create --uid=sluice --display-name=sluice \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  trap - ERR
  echo "S3_ENDPOINT=http://127.0.0.1:$RGW_PORT"
  echo "AWS_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "AWS_REGION=us-east-1"
}

stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file"); rm -f "$file"
  # Throw-away data: SIGKILL at once (a graceful stop takes seconds).
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}

stop_daemons() {
  for pattern in 'client.rgw.*' 'osd.*' 'mon.*'; do
    for file in "$CEPH_DIR"/run/$pattern.pid; do stop_pidfile "$file"; done
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop_daemons; rm -rf "$CEPH_DIR" ;;
  stop-rgw) stop_pidfile "$RGW_PIDFILE" ;;
  start-rgw) start_rgw ;;
  *) echo "usage: $0 start|stop|stop-rgw|start-rgw" >&2; exit 2 ;;
esac
