#!/usr/bin/env bash
# Make this machine ready to run the mitosis stack as Podman pods, and start Podman's API
# service. Idempotent, and it touches only what is mitosis's: it installs only what is missing;
# changes containers.conf only where Podman does not work here as it comes (each line it writes
# says why and how to undo it); starts the API service only when the socket does not answer,
# and restarts it, after such a change, only if this script started it (its PID file); and
# stops, of the containers mitosis made, those Podman calls running whose processes are gone,
# and the rest of their pods (their port forwarding would trap anyone else listening on those
# ports).
#
# On Debian/Ubuntu as root it does everything. Anywhere else it says exactly what to install
# and exits 2. Exit codes: 0 ready, 1 failed, 2 cannot set up here (use `--runtime process`).
#
# Environment: MITOSIS_PODMAN_SOCKET (default /run/podman/podman.sock),
#              MITOSIS_CONTAINERS_CONF (default /etc/containers/containers.conf),
#              MITOSIS_PODMAN_LOG (default /var/log/mitosis-podman-service.log),
#              MITOSIS_PODMAN_PIDFILE (default /run/mitosis-podman-service.pid).
set -euo pipefail

SOCK="${MITOSIS_PODMAN_SOCKET:-/run/podman/podman.sock}"
CONF="${MITOSIS_CONTAINERS_CONF:-/etc/containers/containers.conf}"
LOG="${MITOSIS_PODMAN_LOG:-/var/log/mitosis-podman-service.log}"
PIDFILE="${MITOSIS_PODMAN_PIDFILE:-/run/mitosis-podman-service.pid}"

say() { echo "setup: $*" >&2; }

running() { # pid: a live process (a zombie is dead)
	[ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

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

# The API service this script started, if it still runs: the PID its PID file names, if that
# process is still `podman system service` on our socket (a PID can have been reused since).
our_service_pid() {
	local pid
	pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "podman system service --time=0 unix://$SOCK " ] || return 1
	echo "$pid"
}

# 2. containers.conf, changed only where Podman does not work here as it comes, and never where
# the file already sets the key (an administrator's choice stands).
#  - runtime: Podman's default runtime, crun, fails on a cgroups v1 or hybrid layout here
#    (containers do not start); runc works. Set only when Podman would run crun on cgroups v1.
#  - default_ulimits: rootful Podman asks every container for 1048576 open files and processes
#    (libpod's RLimitDefaultValue), which needs the right to raise hard limits that far; where
#    this root may not (a container, a sandbox), every container fails to start. Set, to the
#    host's hard limits (at most 20000, what the stack needs), only when raising is refused.
if [ "$(id -u)" = 0 ]; then
	changed=()
	# conf_set section key value why: add `key = value` under [section], after a comment
	# saying that mitosis wrote it, why, and how to undo it; nothing if the key is set.
	conf_set() {
		local section=$1 key=$2 value=$3 why=$4
		if [ -f "$CONF" ] && grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$CONF"; then return 0; fi
		mkdir -p "$(dirname "$CONF")"
		touch "$CONF"
		if ! grep -Eq "^[[:space:]]*\[${section}\][[:space:]]*(#.*)?$" "$CONF"; then
			if [ -s "$CONF" ]; then echo >>"$CONF"; fi
			printf '[%s]\n' "$section" >>"$CONF"
		fi
		local block
		block="# Set by mitosis (platform/setup/podman.sh): ${why}"$'\n'"# To undo it, delete this comment and the line below, then restart Podman's API service."$'\n'"${key} = ${value}"
		# After the section's first header; written in place, so the file keeps its owner and mode.
		local out
		out=$(BLOCK="$block" SECTION="$section" awk '
			{ print }
			!done && $0 ~ "^[[:space:]]*\\[" ENVIRON["SECTION"] "\\][[:space:]]*(#.*)?$" { print ENVIRON["BLOCK"]; done = 1 }
		' "$CONF")
		printf '%s\n' "$out" >"$CONF"
		changed+=("$key = $value")
	}

	read -r oci_runtime cgroups < <(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}}' 2>/dev/null || echo "unknown unknown")
	if [ "$oci_runtime" = crun ] && [ "$cgroups" = v1 ]; then
		conf_set engine runtime '"runc"' "Podman's default runtime, crun, fails to start containers on this host's cgroups v1 or hybrid layout; runc works."
	elif [ "$oci_runtime" = unknown ]; then
		say "podman info failed: containers.conf's runtime left as it is"
	fi

	if ! (ulimit -Hn 1048576 && ulimit -Hu 1048576) 2>/dev/null; then
		lim() { # the host's hard limit, capped at 20000 (what the stack needs)
			if [ "$1" = unlimited ] || [ "$1" -gt 20000 ]; then echo 20000; else echo "$1"; fi
		}
		nofile=$(lim "$(ulimit -Hn)") nproc=$(lim "$(ulimit -Hu)")
		conf_set containers default_ulimits "[\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]" \
			"Podman asks containers for 1048576 open files and processes by default, and this host refuses to raise its limits that far; these are its own hard limits (at most 20000)."
	fi

	if [ ${#changed[@]} -gt 0 ]; then
		say "changed $CONF: $(printf '%s; ' "${changed[@]}")each line says why, and how to undo it"
		if socket_answers; then
			if pid=$(our_service_pid); then
				say "restarting the API service this script started (pid $pid) to apply it"
				kill "$pid" 2>/dev/null || true
				for _ in $(seq 1 100); do
					running "$pid" || break
					sleep 0.1
				done
			else
				say "the API service on unix://$SOCK was not started by this script: restart it yourself to apply $CONF"
			fi
		fi
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
	mkdir -p "$(dirname "$SOCK")" "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
	rm -f "$SOCK"
	say "starting podman system service on unix://$SOCK (log: $LOG, pid file: $PIDFILE)"
	# The shell writes its own PID, then becomes the service: the PID file names the service
	# whether or not setsid had to fork. It runs in /, not in the caller's folder: conmon starts
	# every container from the service's working directory, and a checkout removed later (a CI
	# clone) would leave every container start failing ("write child: broken pipe").
	# shellcheck disable=SC2016 # $$ and $1 are the inner shell's
	(
		cd / || exit 1
		nohup setsid bash -c 'echo $$ >"$1" && shift && exec "$@"' podman-service "$PIDFILE" \
			podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 </dev/null &
	)
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

# 4. Containers mitosis made that Podman calls running whose processes are gone. When every
# process of a machine is killed without a reboot (a suspended sandbox, a reused CI machine),
# Podman's records still say "running" and the containers' port-forwarding rules stay. Such a
# port can then be bound by anyone, and every connection to it is forwarded to the dead
# container and refused: a test server that happens to listen there is never reached. Stopping
# those containers makes the records true and removes their rules (mitosis up remakes its
# pods). Only mitosis's containers are touched: those labelled mitosis.stack (mitosis up, kube
# play) or mitosis.it.run (the container suites), and the infra containers of pods labelled
# mitosis.stack, which hold the pods' published ports. Anyone else's are left as they are.
# A live container's conmon holds its published ports, so only the dead ones are a trap.
conmon_alive() { # pid: a live conmon (a PID can have been reused since)
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = conmon ] && running "$1"
}
stop_lost() {
	[ "$(id -u)" = 0 ] || return 0
	local ids pods lost=() lostpods=() podof=() id pid pod stack run
	ids=$(podman ps -q --no-trunc) || return 0
	[ -n "$ids" ] || return 0
	pods=$(podman pod ps -q --no-trunc --filter label=mitosis.stack) || return 0
	# shellcheck disable=SC2086 # one argument per ID
	while IFS='|' read -r id pid pod stack run; do
		if [ -z "$stack" ] && [ -z "$run" ] && { [ -z "$pod" ] || ! grep -qxF "$pod" <<<"$pods"; }; then
			continue # not mitosis's
		fi
		[ -z "$pod" ] || podof+=("$id|$pod")
		if ! conmon_alive "$pid"; then
			lost+=("$id")
			[ -z "$pod" ] || lostpods+=("$pod")
		fi
	done < <(podman inspect --format '{{.ID}}|{{.State.ConmonPid}}|{{.Pod}}|{{index .Config.Labels "mitosis.stack"}}|{{index .Config.Labels "mitosis.it.run"}}' $ids)
	[ ${#lost[@]} -gt 0 ] || return 0
	say "${#lost[@]} of mitosis's container(s) Podman calls running have no process left: stopping them, and the rest of their pods, to remove their port forwarding"
	# The rest of a lost container's pod goes too: a pod one of whose processes is gone is
	# broken whatever Podman says of the others (its infra container holds the namespaces
	# and ports they all use), mitosis up remakes it whole, and a container of it that this
	# look called alive was seen (a test killing a pod's processes, once in some twenty
	# runs) still "running" without a process after the rest of its pod was stopped.
	local entry
	for entry in "${podof[@]}"; do
		if printf '%s\n' "${lostpods[@]}" | grep -qxF "${entry#*|}" && ! printf '%s\n' "${lost[@]}" | grep -qxF "${entry%%|*}"; then
			lost+=("${entry%%|*}")
		fi
	done
	# One by one, not by pod: stopping a pod whose processes are gone leaves its infra
	# container's rules behind (Podman 4.3), stopping that container itself removes them.
	# Podman complains that they are "not running", which is the point. A stop can also fail
	# for a moment (once in a CI run, the app container of a lost pod stayed "running" while
	# its infra container stopped), so whatever Podman still calls running is stopped again,
	# and what then still runs is named with Podman's word.
	podman stop -t 0 "${lost[@]}" >/dev/null 2>&1
	local try left err
	for try in 1 2 3; do
		left=$(podman inspect --format '{{if .State.Running}}{{.ID}}{{end}}' "${lost[@]}" 2>/dev/null | grep .) || return 0
		[ "$try" = 3 ] && break
		sleep 1
		# shellcheck disable=SC2086 # one argument per ID
		err=$(podman stop -t 0 $left 2>&1 >/dev/null)
	done
	say "could not stop lost container(s) ${left//$'\n'/ }: ${err:-podman stop succeeded, yet Podman still calls them running}"
}
stop_lost
