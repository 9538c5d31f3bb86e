package testenv

import (
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartChild starts cmd so that it dies with the test binary: the kernel
// sends it SIGKILL when the thread that started it ends (Pdeathsig), so
// that thread is kept, locked, until the child has exited. The returned
// channel is closed once the child is gone and after (when not nil) has
// run.
func StartChild(cmd *exec.Cmd, after func()) (<-chan struct{}, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
			if after != nil {
				after()
			}
		}
		close(done)
	}()
	return done, <-started
}

// Process is a program a test runs, its output captured in Out.
type Process struct {
	Cmd  *exec.Cmd
	Out  *Buffer
	done <-chan struct{}
}

// Start runs bin with args and the environment env: the whole of it, so
// callers pass os.Environ() or Environ(...) plus their settings (nil
// inherits the test's own). Its stdout and stderr go to Out. It dies with the test binary, and is killed when the test ends;
// a failed test logs the last lines of its output.
func Start(t testing.TB, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Out: &Buffer{}}
	p.Cmd.Env = env
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	done, err := StartChild(p.Cmd, nil)
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p.done = done
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", bin, p.Cmd.Process.Pid, Tail(p.Out.String(), 60))
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool { return !Closed(p.done) }

// Closed reports whether ch is closed, as a done channel of StartChild is
// once its process has exited.
func Closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Signal sends sig to a running process.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return nil
	}
	return p.Cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s", p.Cmd.Path, d)
		return -1
	}
}

// Rusage is the resource use of the exited process (getrusage of the
// child: CPU times, peak resident set size).
func (p *Process) Rusage() *syscall.Rusage {
	return p.Cmd.ProcessState.SysUsage().(*syscall.Rusage)
}

// WaitOutput waits up to d for text to appear in the output, and fails
// the test when d passes or the process exits first.
func (p *Process) WaitOutput(t testing.TB, d time.Duration, text string) {
	t.Helper()
	p.Until(t, d, "output "+text, func() bool { return strings.Contains(p.Out.String(), text) })
}

// Until polls cond like Eventually, and fails the test at once, with the
// process's output, when the process exits before cond holds.
func (p *Process) Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	exited := false
	ok := Poll(d, 20*time.Millisecond, func() bool {
		if cond() {
			return true
		}
		exited = !p.Running()
		return exited
	})
	switch {
	case exited && !cond():
		t.Fatalf("%s exited (%v) while waiting for %s:\n%s", p.Cmd.Path, p.Cmd.ProcessState, what, Tail(p.Out.String(), 30))
	case !ok:
		t.Fatalf("timed out after %s waiting for %s:\n%s", d, what, Tail(p.Out.String(), 30))
	}
}
