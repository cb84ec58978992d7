// kwc: the program of the reference launcher and runner images (see
// docs/protocol.md, "The run Pod's contract"). One static binary, several
// roles, chosen by the name it is started under:
//
//	kwc-launcher  the launcher image's entry point: `init` when the run's
//	              workspace is not prepared yet, else the `launcher-grpc`
//	              sidecar (init always runs first, so the run description it
//	              leaves tells the two apart)
//	kwc-runner    the runner image's entry point: runs the run's script in
//	              the workspace, with the cached tools first on PATH, and exits
//	              with its exit code
//	kwc           the tool init puts into the binaries cache: scripts use it
//	              to talk to launcher-grpc (`kwc phase`, `kwc run-info`) and to
//	              see what the cache holds (`kwc cache`)
//
// Built by src/images/build.ts with CGO off: the images need nothing else.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Version of the launcher and runner contract this program implements.
const version = "1.0.0"

const (
	envRunID         = "SPACELIFT_RUN_ID"
	envWorkerID      = "SPACELIFT_WORKER_ID"
	envPoolID        = "SPACELIFT_POOL_ID"
	envWorkspace     = "SPACELIFT_WORKSPACE_PATH"
	envBinariesCache = "SPACELIFT_BINARIES_CACHE_PATH"
	envRunTimeout    = "SPACELIFT_LAUNCHER_RUN_TIMEOUT"
	envLogsTimeout   = "SPACELIFT_LAUNCHER_LOGS_TIMEOUT"
	// On init, for a run with a script: the SHA-256 the schedule named.
	envScriptSHA256 = "SPACELIFT_RUN_SCRIPT_SHA256"

	defaultWorkspace     = "/opt/spacelift/workspace"
	defaultBinariesCache = "/opt/spacelift/binaries_cache"

	// Where the controller mounts the run's script into init (a Secret volume).
	scriptMount = "/opt/spacelift/run/script"
	// What init leaves in the workspace for launcher-grpc and worker.
	runDirName      = ".spacelift"
	runDescription  = "run.json"
	runScriptName   = "script"
	phasesFile      = "phases.jsonl"
	cacheMarkerName = ".kwc-cache.json"
	// The tools init copies into the binaries cache (inside the launcher image).
	toolsDir = "/opt/kwc/tools"
	// launcher-grpc listens here, on the Pod's loopback interface.
	launcherAddress = "127.0.0.1:7591"
	terminationLog  = "/dev/termination-log"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func workspace() string     { return env(envWorkspace, defaultWorkspace) }
func binariesCache() string { return env(envBinariesCache, defaultBinariesCache) }
func runDir() string        { return filepath.Join(workspace(), runDirName) }

func main() {
	role := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if role == "kwc" && len(args) > 0 && (args[0] == "launcher" || args[0] == "runner") {
		role, args = "kwc-"+args[0], args[1:]
	}
	var code int
	switch role {
	case "kwc-launcher":
		code = launcher()
	case "kwc-runner":
		code = runner()
	default:
		code = tool(args)
	}
	os.Exit(code)
}

// fail prints a message for people (stderr) and for Kubernetes (the
// termination message, which the controller puts into the run's reason).
func fail(code int, format string, a ...any) int {
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintln(os.Stderr, msg)
	_ = os.WriteFile(terminationLog, []byte(msg), 0o644)
	return code
}

func usage() int {
	fmt.Fprint(os.Stderr, strings.TrimLeft(`
usage: kwc phase <name> [detail...]   report a phase of the run to launcher-grpc
       kwc run-info                   print the run description launcher-grpc serves
       kwc cache                      say what the binaries cache holds and which run filled it
       kwc version
`, "\n"))
	return 2
}
