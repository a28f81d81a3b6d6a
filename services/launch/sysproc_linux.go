package launch

import "syscall"

// sysProcAttr puts a child in its own process group, so that the terminal's Ctrl-C reaches
// only the launcher, which stops the children in order; and has the kernel send it SIGTERM
// if the launcher dies without stopping it, so that no process outlives the stack.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
