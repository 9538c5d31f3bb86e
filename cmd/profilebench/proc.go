package main

// A profiled process: started from bin/profiled, stopped with its CPU
// time and peak RSS.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startProfiled starts bin/profiled on topic; its log goes to stderr. When
// batchFile is given, profiled appends each batch it writes to it as a
// JSON line (consumer.BatchInfo, through its PROFILED_TEST_BATCH_LOG hook).
func startProfiled(s settings, topic, group, prefix, batchFile string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.binary)
	cmd.Env = append(os.Environ(),
		"PROFILED_KAFKA_BROKERS="+strings.Join(s.brokers, ","), "PROFILED_KAFKA_TOPICS="+topic,
		"PROFILED_KAFKA_GROUP="+group, "PROFILED_DLQ_TOPIC="+topic+"-dlq",
		"PROFILED_REDIS_URL="+s.redisURL, "PROFILED_REDIS_KEY_PREFIX="+prefix,
		"PROFILED_HTTP_ADDR="+addr, "PROFILED_LOG_LEVEL="+envStr("BENCH_LOG_LEVEL", "warn"), "PROFILED_DEFAULT_PHONE_REGION=IN",
		"PROFILED_BATCH_SIZE="+strconv.Itoa(s.batchSize))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if batchFile != "" {
		cmd.Env = append(cmd.Env, "PROFILED_TEST_BATCH_LOG="+batchFile)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build first): %w", s.binary, err)
	}
	p := &proc{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM and waits; it returns the process' CPU seconds and
// peak RSS in MiB. The peak is the kernel's high-water mark of the
// process' own address space (VmHWM, reset by exec), read before the
// signal: wait4's ru_maxrss would also count the pages the child shared
// with this process between fork and exec, and this process holds the
// whole workload in memory.
func (p *proc) stop() (float64, float64) {
	hwm := vmHWM(p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpu, hwm
}
