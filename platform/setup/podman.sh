#!/usr/bin/env bash
# Make this machine ready to run the mitosis stack as Podman pods, and start Podman's API
# service. Idempotent: it installs only what is missing, writes containers.conf settings only
# when they are not there, starts the service only when the socket does not answer, and stops
# the containers Podman calls running whose processes are gone (their port forwarding would
# trap anyone else listening on those ports).
#
# On Debian/Ubuntu as root it does everything. Anywhere else it says exactly what to install
# and exits 2. Exit codes: 0 ready, 1 failed, 2 cannot set up here (use `--runtime process`).
#
# Environment: MITOSIS_PODMAN_SOCKET (default /run/podman/podman.sock),
#              MITOSIS_CONTAINERS_CONF (default /etc/containers/containers.conf).
set -euo pipefail

SOCK="${MITOSIS_PODMAN_SOCKET:-/run/podman/podman.sock}"
CONF="${MITOSIS_CONTAINERS_CONF:-/etc/containers/containers.conf}"
LOG="${MITOSIS_PODMAN_LOG:-/var/log/mitosis-podman-service.log}"

say() { echo "setup: $*" >&2; }

socket_answers() {
	[ -S "$SOCK" ] || return 1
	if command -v curl >/dev/null; then
		curl -fsS --max-time 3 --unix-socket "$SOCK" http://d/v4.0.0/libpod/_ping >/dev/null 2>&1
	else
		podman --url "unix://$SOCK" version >/dev/null 2>&1
	fi
}

# 1. Packages.
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v curl >/dev/null || missing+=(curl)
# Pods need an infra ("pause") container, which Podman builds locally from catatonit since no
# image can be pulled; the network's DNS (service names) is the CNI dnsname plugin.
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || missing+=(catatonit)
[ -x /usr/lib/cni/dnsname ] || [ -x /usr/libexec/cni/dnsname ] || command -v netavark >/dev/null ||
	missing+=(golang-github-containernetworking-plugin-dnsname)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		say "missing: ${missing[*]}."
		say "install them (Debian/Ubuntu: sudo apt-get install -y ${missing[*]};"
		say "Fedora: sudo dnf install -y ${missing[*]}; macOS: brew install podman && podman machine init && podman machine start),"
		say "then run this script again as root, or use the process runtime: mitosis up --runtime process"
		exit 2
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. containers.conf: runc (crun fails on hybrid cgroups here) and ulimits the kernel accepts
# (Podman's default rlimits are refused on this kind of machine). Written only when missing, so
# an administrator's own settings are left alone.
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$(dirname "$CONF")"
	touch "$CONF"
	changed=0
	ensure_engine_key() { # key, value: add under [engine] when the key is absent
		local key=$1 value=$2
		grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$CONF" && return 0
		if ! grep -Eq '^\[engine\]' "$CONF"; then printf '\n[engine]\n' >>"$CONF"; fi
		sed -i "/^\[engine\]/a ${key} = ${value}" "$CONF"
		changed=1
	}
	ensure_containers_key() {
		local key=$1 value=$2
		grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$CONF" && return 0
		if ! grep -Eq '^\[containers\]' "$CONF"; then printf '\n[containers]\n' >>"$CONF"; fi
		sed -i "/^\[containers\]/a ${key} = ${value}" "$CONF"
		changed=1
	}
	ensure_engine_key runtime '"runc"'
	nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
	lim() { # the host's hard limit, capped at 20000 (what the stack needs)
		if [ "$1" = unlimited ] || [ "$1" -gt 20000 ]; then echo 20000; else echo "$1"; fi
	}
	ensure_containers_key default_ulimits "[\"nofile=$(lim "$nofile"):$(lim "$nofile")\", \"nproc=$(lim "$nproc"):$(lim "$nproc")\"]"
	if [ $changed = 1 ]; then say "wrote runtime/ulimit settings to $CONF"; fi
	if [ $changed = 1 ] && socket_answers; then
		say "containers.conf changed: restart the API service to apply it"
		pid=$(pgrep -f "podman system service --time=0 unix://$SOCK" | head -n1 || true)
		if [ -n "$pid" ]; then kill "$pid" || true; fi
		for _ in $(seq 1 50); do socket_answers || break; sleep 0.1; done
	fi
fi

# 3. The API service.
start_service() {
	if socket_answers; then
		say "podman API answers on unix://$SOCK"
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		say "start the API yourself: podman system service --time=0 unix://$SOCK &"
		exit 2
	fi
	mkdir -p "$(dirname "$SOCK")"
	rm -f "$SOCK"
	say "starting podman system service on unix://$SOCK (log: $LOG)"
	nohup setsid podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 </dev/null &
	for _ in $(seq 1 100); do
		if socket_answers; then
			say "podman API answers on unix://$SOCK"
			return 0
		fi
		sleep 0.1
	done
	say "podman API did not answer within 10s; last lines of $LOG:"
	tail -n 20 "$LOG" >&2 || true
	exit 1
}
start_service

# 4. Containers Podman calls running whose processes are gone. When every process of a machine
# is killed without a reboot (a suspended sandbox, a reused CI machine), Podman's records still
# say "running" and the containers' port-forwarding rules stay. Such a port can then be bound
# by anyone, and every connection to it is forwarded to the dead container and refused: a test
# server that happens to listen there is never reached. Stopping those containers makes the
# records true and removes their rules; nothing else is touched (mitosis up remakes its pods).
# A live container's conmon holds its published ports, so only the dead ones are a trap.
conmon_alive() { # pid: a live conmon (a PID can have been reused since, and a zombie is dead)
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = conmon ] || return 1
	! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
stop_lost() {
	[ "$(id -u)" = 0 ] || return 0
	local ids lost=() id pid
	ids=$(podman ps -q) || return 0
	[ -n "$ids" ] || return 0
	# shellcheck disable=SC2086 # one argument per ID
	while read -r id pid; do
		conmon_alive "$pid" || lost+=("$id")
	done < <(podman inspect --format '{{.ID}} {{.State.ConmonPid}}' $ids)
	[ ${#lost[@]} -gt 0 ] || return 0
	say "${#lost[@]} container(s) Podman calls running have no process left: stopping them to remove their port forwarding"
	# One by one, not by pod: stopping a pod whose processes are gone leaves its infra
	# container's rules behind (Podman 4.3), stopping that container itself removes them.
	# Podman complains that they are "not running", which is the point.
	podman stop -t 0 "${lost[@]}" >/dev/null 2>&1 || say "could not stop every lost container"
}
stop_lost
