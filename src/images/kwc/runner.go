package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Time a stopped script gets between SIGTERM and SIGKILL when the runner
// itself stops it (a timeout); on a stop from Kubernetes the Pod's grace
// period applies, as the kubelet enforces it.
const killGrace = 10 * time.Second

// runner runs the run's script in the workspace and exits with its code.
// It prints nothing of its own unless something goes wrong, so that the
// run's log is exactly what the script printed.
func runner() int {
	ws := workspace()
	runID := os.Getenv(envRunID)
	script := filepath.Join(ws, runDirName, runScriptName)
	if _, err := os.Stat(script); err != nil {
		if os.IsNotExist(err) {
			fmt.Fprintf(os.Stderr, "kwc-runner: run %s has no script: nothing to run\n", runID)
			return 0
		}
		return fail(1, "kwc-runner: cannot read the script %s: %v", script, err)
	}
	runTimeout, err := durationEnv(envRunTimeout)
	if err != nil {
		return fail(2, "kwc-runner: %v", err)
	}
	logsTimeout, err := durationEnv(envLogsTimeout)
	if err != nil {
		return fail(2, "kwc-runner: %v", err)
	}

	// The cached tools first on PATH.
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if info, err := os.Stat(filepath.Join(binariesCache(), "bin")); err == nil && info.IsDir() {
		path = filepath.Join(binariesCache(), "bin") + ":" + path
	}
	environ := append(withoutPath(os.Environ()), "PATH="+path)

	var lastOutput atomic.Int64
	lastOutput.Store(time.Now().UnixNano())
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		return fail(1, "kwc-runner: %v", err)
	}
	stderr, stderrW, err := os.Pipe()
	if err != nil {
		return fail(1, "kwc-runner: %v", err)
	}
	// Told in the background: the script does not wait for the sidecar.
	go reportPhase("running", "")
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", script}, &syscall.ProcAttr{
		Dir:   ws,
		Env:   environ,
		Files: []uintptr{os.Stdin.Fd(), stdoutW.Fd(), stderrW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		return fail(1, "kwc-runner: cannot start /bin/sh %s: %v", script, err)
	}

	var copying sync.WaitGroup
	relay := func(from *os.File, to *os.File) {
		defer copying.Done()
		buf := make([]byte, 64*1024)
		for {
			n, err := from.Read(buf)
			if n > 0 {
				lastOutput.Store(time.Now().UnixNano())
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	copying.Add(2)
	go relay(stdout, os.Stdout)
	go relay(stderr, os.Stderr)

	// As PID 1 the runner also inherits whatever the script leaves behind: reap everything.
	exited := make(chan syscall.WaitStatus, 1)
	go func() {
		for {
			var status syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &status, 0, nil)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return
			}
			if wpid == pid {
				exited <- status
			}
		}
	}()

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	var runDeadline <-chan time.Time
	if runTimeout > 0 {
		runDeadline = time.After(runTimeout)
	}
	var silence <-chan time.Time
	if logsTimeout > 0 {
		ticker := time.NewTicker(minDuration(time.Second, logsTimeout/4+time.Millisecond))
		defer ticker.Stop()
		silence = ticker.C
	}
	var timedOut string
	var status syscall.WaitStatus
	var killAt <-chan time.Time
	stopScript := func(why string) {
		if timedOut != "" {
			return
		}
		timedOut = why
		fmt.Fprintf(os.Stderr, "\nkwc-runner: %s; stopping the script (SIGTERM, SIGKILL after %s)\n", why, killGrace)
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		killAt = time.After(killGrace)
	}
wait:
	for {
		select {
		case status = <-exited:
			break wait
		case s := <-signals:
			// Stopped by Kubernetes (a stop, the Pod's deadline): pass it on and let the script end.
			_ = syscall.Kill(-pid, s.(syscall.Signal))
		case <-runDeadline:
			stopScript(fmt.Sprintf("the run timed out after %s (%s)", runTimeout, envRunTimeout))
		case <-silence:
			quiet := time.Since(time.Unix(0, lastOutput.Load()))
			if quiet >= logsTimeout {
				stopScript(fmt.Sprintf("no log output for %s (%s=%s)", quiet.Truncate(time.Second), envLogsTimeout, logsTimeout))
			}
		case <-killAt:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	// The run is over: whatever the script left running goes too, and its output ends.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { copying.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}

	code := status.ExitStatus()
	if status.Signaled() {
		code = 128 + int(status.Signal())
	}
	if timedOut != "" {
		reportPhase("failed", timedOut)
		return fail(124, "%s", timedOut)
	}
	if code == 0 {
		reportPhase("finished", "exit code 0")
	} else {
		reportPhase("failed", fmt.Sprintf("exit code %d", code))
	}
	return code
}

func minDuration(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func withoutPath(environ []string) []string {
	out := environ[:0:0]
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

// durationEnv reads a Go duration ("1h5m0s"), as the controller writes the timeouts; unset is 0 (no limit).
func durationEnv(name string) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q is not a positive duration such as 1h5m0s", name, v)
	}
	return d, nil
}

// reportPhase tells launcher-grpc; best effort (the sidecar may be gone
// already when the run ends, and a runner image may run without it).
func reportPhase(phase, detail string) {
	body, _ := json.Marshal(Phase{Phase: phase, Detail: detail})
	client := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := client.Post("http://"+launcherAddress+"/phases", "application/json", bytes.NewReader(body))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) || phase != "running" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
