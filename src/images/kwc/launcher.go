package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RunDescription is what init writes to <workspace>/.spacelift/run.json and
// launcher-grpc serves at GET /run.
type RunDescription struct {
	RunID         string      `json:"runId"`
	PoolID        string      `json:"poolId"`
	WorkerID      string      `json:"workerId"`
	Workspace     string      `json:"workspace"`
	BinariesCache string      `json:"binariesCache"`
	Script        *ScriptInfo `json:"script"`
	Cache         CacheMarker `json:"binariesCacheContent"`
	PreparedAt    string      `json:"preparedAt"`
	Launcher      string      `json:"launcherVersion"`
}

// ScriptInfo describes the run's script as init put it into the workspace.
type ScriptInfo struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// CacheMarker is <binaries cache>/.kwc-cache.json: which tools the cache
// holds, and which run put them there.
type CacheMarker struct {
	Version  string   `json:"version"`
	Tools    []string `json:"tools"`
	FilledBy string   `json:"filledBy"`
	FilledAt string   `json:"filledAt"`
}

// Phase is one line of <workspace>/.spacelift/phases.jsonl.
type Phase struct {
	At     string `json:"at"`
	Phase  string `json:"phase"`
	Detail string `json:"detail,omitempty"`
}

// launcher is init, or launcher-grpc once init has described the run.
func launcher() int {
	runID := os.Getenv(envRunID)
	if runID == "" {
		return fail(2, "kwc-launcher: %s is not set; the run Pod's contract sets it on init and launcher-grpc", envRunID)
	}
	if d, err := readDescription(); err == nil && d.RunID == runID {
		return serve(d)
	}
	return initialize(runID)
}

func readDescription() (*RunDescription, error) {
	raw, err := os.ReadFile(filepath.Join(runDir(), runDescription))
	if err != nil {
		return nil, err
	}
	var d RunDescription
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// writeAtomic writes a file that readers see whole or not at all.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// initialize prepares the workspace (the script, the run description) and
// fills the binaries cache unless it holds this version's tools already.
func initialize(runID string) int {
	dir := runDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(1, "init: cannot prepare the workspace %s: %v", workspace(), err)
	}
	var script *ScriptInfo
	if content, err := os.ReadFile(scriptMount); err == nil {
		sum := sha256.Sum256(content)
		// The Secret may predate this run (someone else's of the same name): only the script the schedule named is run.
		if want := os.Getenv(envScriptSHA256); want != "" && want != hex.EncodeToString(sum[:]) {
			return fail(1, "init: the script mounted at %s (sha256 %s) is not the run's (%s=%s): refusing to run it", scriptMount, hex.EncodeToString(sum[:]), envScriptSHA256, want)
		}
		path := filepath.Join(dir, runScriptName)
		if err := writeAtomic(path, content, 0o644); err != nil {
			return fail(1, "init: cannot write the script into the workspace: %v", err)
		}
		script = &ScriptInfo{Path: path, Bytes: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
		fmt.Printf("init: run %s: script of %d bytes (sha256 %s) written to %s\n", runID, script.Bytes, script.SHA256, path)
	} else if errors.Is(err, os.ErrNotExist) {
		if os.Getenv(envScriptSHA256) != "" {
			return fail(1, "init: run %s has a script (%s is set) but none is mounted at %s", runID, envScriptSHA256, scriptMount)
		}
		fmt.Printf("init: run %s has no script\n", runID)
	} else {
		return fail(1, "init: cannot read the run's script at %s: %v", scriptMount, err)
	}
	cache, filled, err := fillCache(runID)
	if err != nil {
		return fail(1, "init: cannot fill the binaries cache %s: %v", binariesCache(), err)
	}
	if filled {
		fmt.Printf("init: binaries cache %s filled with %s (kwc %s)\n", binariesCache(), strings.Join(cache.Tools, ", "), cache.Version)
	} else {
		fmt.Printf("init: binaries cache %s already holds %s (kwc %s), cached by run %s at %s: reused\n", binariesCache(), strings.Join(cache.Tools, ", "), cache.Version, cache.FilledBy, cache.FilledAt)
	}
	d := RunDescription{
		RunID:         runID,
		PoolID:        os.Getenv(envPoolID),
		WorkerID:      os.Getenv(envWorkerID),
		Workspace:     workspace(),
		BinariesCache: binariesCache(),
		Script:        script,
		Cache:         cache,
		PreparedAt:    time.Now().UTC().Format(time.RFC3339Nano),
		Launcher:      version,
	}
	raw, _ := json.MarshalIndent(d, "", "  ")
	// Written last: its presence tells launcher-grpc (and a restarted init) that the workspace is ready.
	if err := writeAtomic(filepath.Join(dir, runDescription), append(raw, '\n'), 0o644); err != nil {
		return fail(1, "init: cannot write the run description: %v", err)
	}
	fmt.Printf("init: workspace %s ready\n", workspace())
	return 0
}

func readMarker(cache string) (CacheMarker, bool) {
	var m CacheMarker
	raw, err := os.ReadFile(filepath.Join(cache, cacheMarkerName))
	if err != nil || json.Unmarshal(raw, &m) != nil {
		return m, false
	}
	return m, true
}

// fillCache copies the launcher image's tools into <cache>/bin, once per
// cache volume and tools version. Runs sharing a cache volume may start at
// the same moment: each fills a directory of its own and renames it into
// place, and whoever comes second finds the first one's and keeps it.
func fillCache(runID string) (CacheMarker, bool, error) {
	cache := binariesCache()
	if m, ok := readMarker(cache); ok && m.Version == version {
		if _, err := os.Stat(filepath.Join(cache, "bin")); err == nil {
			return m, false, nil
		}
	}
	entries, err := os.ReadDir(filepath.Join(toolsDir, "bin"))
	if err != nil {
		return CacheMarker{}, false, err
	}
	staging := filepath.Join(cache, ".staging-"+runID)
	_ = os.RemoveAll(staging)
	if err := os.MkdirAll(filepath.Join(staging, "bin"), 0o755); err != nil {
		return CacheMarker{}, false, err
	}
	defer os.RemoveAll(staging)
	var tools []string
	for _, e := range entries {
		if err := copyFile(filepath.Join(toolsDir, "bin", e.Name()), filepath.Join(staging, "bin", e.Name()), 0o755); err != nil {
			return CacheMarker{}, false, err
		}
		tools = append(tools, e.Name())
	}
	sort.Strings(tools)
	marker := CacheMarker{Version: version, Tools: tools, FilledBy: runID, FilledAt: time.Now().UTC().Format(time.RFC3339)}
	// Tools of another version go first.
	if m, ok := readMarker(cache); !ok || m.Version != version {
		_ = os.Rename(filepath.Join(cache, "bin"), filepath.Join(staging, "old-bin"))
	}
	if err := os.Rename(filepath.Join(staging, "bin"), filepath.Join(cache, "bin")); err != nil {
		if m, ok := readMarker(cache); ok && m.Version == version {
			return m, false, nil
		}
		return CacheMarker{}, false, err
	}
	raw, _ := json.MarshalIndent(marker, "", "  ")
	if err := writeAtomic(filepath.Join(cache, cacheMarkerName), append(raw, '\n'), 0o644); err != nil {
		return CacheMarker{}, false, err
	}
	return marker, true, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serve is launcher-grpc: it serves the run description and records the
// phases the worker (or its script, with `kwc phase`) reports, on the Pod's
// loopback interface only, until the kubelet stops it after worker ended.
func serve(d *RunDescription) int {
	var mu sync.Mutex
	var phases []Phase
	phasesPath := filepath.Join(runDir(), phasesFile)
	record := func(p Phase) error {
		mu.Lock()
		defer mu.Unlock()
		line, _ := json.Marshal(p)
		f, err := os.OpenFile(phasesPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(append(line, '\n')); err != nil {
			return err
		}
		phases = append(phases, p)
		if p.Detail != "" {
			fmt.Printf("launcher-grpc: phase %s: %s\n", p.Phase, p.Detail)
		} else {
			fmt.Printf("launcher-grpc: phase %s\n", p.Phase)
		}
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/run", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(d)
	})
	mux.HandleFunc("/phases", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			mu.Lock()
			out := append([]Phase{}, phases...)
			mu.Unlock()
			w.Header().Set("content-type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
		case http.MethodPost:
			var p Phase
			if err := json.NewDecoder(io.LimitReader(r.Body, 64*1024)).Decode(&p); err != nil || p.Phase == "" || len(p.Phase) > 64 || len(p.Detail) > 4096 {
				http.Error(w, `body must be {"phase": "<1-64 characters>", "detail": "<at most 4096>"}`, http.StatusBadRequest)
				return
			}
			p.At = time.Now().UTC().Format(time.RFC3339Nano)
			if err := record(p); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		}
	})
	listener, err := net.Listen("tcp", launcherAddress)
	if err != nil {
		return fail(1, "launcher-grpc: cannot listen on %s: %v", launcherAddress, err)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("launcher-grpc: serving run %s on %s (GET /run, GET and POST /phases)\n", d.RunID, launcherAddress)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { _ = server.Serve(listener) }()
	s := <-stop
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx)
	mu.Lock()
	names := make([]string, 0, len(phases))
	for _, p := range phases {
		names = append(names, p.Phase)
	}
	mu.Unlock()
	fmt.Printf("launcher-grpc: stopped (%s) after %d phase(s): %s\n", signalName(s), len(names), strings.Join(names, ", "))
	return 0
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "TERM"
	}
	return "INT"
}
