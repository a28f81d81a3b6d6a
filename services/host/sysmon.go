package host

import (
	"os"
	"slices"
	"strings"
	"syscall"
)

// SysmonGODEBUG is what KeepSysmonAwake adds to GODEBUG: a scheduler trace every 2^31-1 ms
// (24.8 days). Its one effect that matters is the runtime's own rule that sysmon never sleeps
// deeply while a trace is due (runtime/proc.go, sysmon); the trace itself is one line on
// standard error per 24.8 days of the machine's uptime.
const SysmonGODEBUG = "schedtrace=2147483647"

// KeepSysmonAwake runs the binary again, in place (same process, same PID), with
// SysmonGODEBUG added to GODEBUG, unless GODEBUG already sets schedtrace; it returns only
// when it did not (or could not) do so.
//
// Why: Go's sysmon thread sleeps deeply once every P is idle, and the first system call after
// that wakes it and makes it poll every 20 µs, backing off only after a millisecond. A
// service between two calls is idle, so every call that wakes it pays for that burst of
// wake-ups: perf of the gateway and catalog processes under the load test's mix put 16-18% of
// their CPU in sysmon. With a trace due, sysmon never sleeps deeply and stays at the 10 ms it
// backs off to, as in a process that is never idle. Measured with the processes under the
// quotas make compare gives them, the load test's mix at 200 req/s, runs alternated: the
// eight hosts of the microservices 1.03-1.07 ms of CPU a request against 1.28-1.32, the
// monolith's process 0.44-0.47 against 0.53-0.59 (services/README.md, "The split tax"). The
// price: an idle host wakes every 10 ms, 1.6-2.3 ms of CPU a second against 0.5-1.0.
func KeepSysmonAwake() {
	debug := os.Getenv("GODEBUG")
	if strings.Contains(debug, "schedtrace=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	if debug != "" {
		debug += ","
	}
	env = append(env, "GODEBUG="+debug+SysmonGODEBUG)
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure: run on as it is
}
