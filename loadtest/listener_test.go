package loadtest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// treeProgram is a launcher and its children in one binary, as a launcher and the binaries
// it starts sit in one folder: "parent" starts two children from the same folder, one of
// which listens; the parent prints the listener's address.
const treeProgram = `package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"bufio"
	"time"
)

func main() {
	switch os.Args[1] {
	case "parent":
		l := exec.Command(os.Args[0], "listen")
		out, _ := l.StdoutPipe()
		_ = l.Start()
		idle := exec.Command(os.Args[0], "idle")
		_ = idle.Start()
		line, _ := bufio.NewReader(out).ReadString('\n')
		fmt.Print(line)
		time.Sleep(time.Minute)
		l.Process.Kill()
		idle.Process.Kill()
	case "listen":
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		fmt.Println(ln.Addr())
		time.Sleep(time.Minute)
	case "idle":
		time.Sleep(time.Minute)
	}
}
`

// TestProcsByListenerFindsTheLaunchersTree: the process behind a port, its launcher from the
// same folder, and the launcher's other children.
func TestProcsByListenerFindsTheLaunchersTree(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tree\n\ngo 1.26\n"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "main.go"), []byte(treeProgram), 0o644)
	bin := filepath.Join(dir, "bin", "launcher")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "parent")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killing the launcher would leave its children running: end them first, by PID.
		for _, p := range childrenMap()[cmd.Process.Pid] {
			if pr, err := os.FindProcess(p); err == nil {
				_ = pr.Kill()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addrc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addrc <- strings.TrimSpace(line)
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatal("the listener never said where it listens")
	}
	procs, err := ProcsByListener(addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 3 || procs[0].PID != cmd.Process.Pid {
		t.Fatalf("processes %+v: want the launcher (pid %d) first, then its two children", procs, cmd.Process.Pid)
	}
	names := []string{procs[0].Name, procs[1].Name, procs[2].Name}
	if !slices.Equal(names, []string{"launcher", "launcher#2", "launcher#3"}) {
		t.Errorf("names %v: want distinct names", names)
	}
	sampler := &ProcSampler{Procs: procs}
	u, err := sampler.Sample(t.Context())
	if err != nil || len(u) != 3 {
		t.Fatalf("sample %v, %v", u, err)
	}
	for name, x := range u {
		if x.MemBytes == 0 {
			t.Errorf("%s: no memory", name)
		}
	}
}
