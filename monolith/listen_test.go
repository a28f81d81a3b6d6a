//go:build linux

package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// asMonolithEnv, set, makes this test binary the monolith itself (its main) instead of
// running tests (see TestMain).
const asMonolithEnv = "MITOSIS_TEST_AS_MONOLITH"

// TestEmbeddedStoreListensNowhere runs the monolith's main in a process of its own, with its
// store embedded, and checks that the only port it opens is its edge's: the embedded NATS
// takes in-process connections only, so nothing but the public API is reachable from the
// network (issue 19: the monolith "listens on no port but its edge unless asked").
func TestEmbeddedStoreListensNowhere(t *testing.T) {
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		asMonolithEnv+"=1",
		"SHOP_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"SHOP_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		"SHOP_METRICS_ADDR=",
		"SHOP_NATS_URL=",
		"OTEL_TRACES_EXPORTER=none",
		"OTEL_METRICS_EXPORTER=none",
		"OTEL_LOGS_EXPORTER=none",
	)
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("the monolith did not stop within 30 s of SIGTERM")
		}
	})

	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := client.Get(ready)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("the monolith exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not 200 within 60 s (last: %v)", ready, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	got, err := listeningPorts(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tcp 127.0.0.1:" + strconv.Itoa(port)}; !slices.Equal(got, want) {
		t.Errorf("the monolith listens on %q, want its edge alone: %q", got, want)
	}
}

// runAsMonolith is the child's side of TestEmbeddedStoreListensNowhere: the monolith's main,
// stopped by SIGTERM as in production.
func runAsMonolith() { main() }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listeningPorts lists the sockets process pid listens on (TCP) or is bound to (UDP), as
// "tcp 127.0.0.1:8080", read from /proc: the sockets among its open files, looked up in its
// network namespace's tables.
func listeningPorts(pid int) ([]string, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, fmt.Errorf("open files of %d: %w", pid, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []string
	for _, table := range []struct {
		file, proto, state string // state: TCP_LISTEN, or UDP's "closed" of a bound socket
	}{{"tcp", "tcp", "0A"}, {"tcp6", "tcp", "0A"}, {"udp", "udp", "07"}, {"udp6", "udp", "07"}} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table.file))
		if err != nil {
			return nil, fmt.Errorf("sockets of %d: %w", pid, err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != table.state || !inodes[fields[9]] {
				continue
			}
			addr, err := procAddr(fields[1])
			if err != nil {
				f.Close()
				return nil, err
			}
			ports = append(ports, table.proto+" "+addr)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("sockets of %d: %w", pid, err)
		}
	}
	slices.Sort(ports)
	return ports, nil
}

// procAddr decodes an address of /proc/net/tcp: the IP as hex words in host (little-endian)
// order, a colon, the port in hex.
func procAddr(s string) (string, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(portHex, 16, 16)
	if !ok || err != nil || len(ipHex)%8 != 0 {
		return "", fmt.Errorf("socket address %q", s)
	}
	ip := make(net.IP, 0, len(ipHex)/2)
	for w := 0; w < len(ipHex); w += 8 {
		word, err := strconv.ParseUint(ipHex[w:w+8], 16, 32)
		if err != nil {
			return "", fmt.Errorf("socket address %q", s)
		}
		ip = append(ip, byte(word), byte(word>>8), byte(word>>16), byte(word>>24))
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), nil
}
