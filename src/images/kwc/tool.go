package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tool is `kwc`, the command init puts into the binaries cache.
func tool(args []string) int {
	if len(args) == 0 {
		return usage()
	}
	client := http.Client{Timeout: 5 * time.Second}
	switch args[0] {
	case "version":
		fmt.Println("kwc", version)
		return 0
	case "phase":
		if len(args) < 2 {
			return usage()
		}
		body, _ := json.Marshal(Phase{Phase: args[1], Detail: strings.Join(args[2:], " ")})
		res, err := client.Post("http://"+launcherAddress+"/phases", "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintf(os.Stderr, "kwc phase: launcher-grpc does not answer on %s: %v\n", launcherAddress, err)
			return 1
		}
		defer res.Body.Close()
		if res.StatusCode >= 300 {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			fmt.Fprintf(os.Stderr, "kwc phase: launcher-grpc answered %d: %s", res.StatusCode, msg)
			return 1
		}
		return 0
	case "run-info":
		res, err := client.Get("http://" + launcherAddress + "/run")
		if err != nil {
			fmt.Fprintf(os.Stderr, "kwc run-info: launcher-grpc does not answer on %s: %v\n", launcherAddress, err)
			return 1
		}
		defer res.Body.Close()
		_, _ = io.Copy(os.Stdout, res.Body)
		return 0
	case "cache":
		cache := binariesCache()
		m, ok := readMarker(cache)
		if !ok {
			fmt.Fprintf(os.Stderr, "kwc cache: %s holds no tools of the reference launcher\n", cache)
			return 1
		}
		self, _ := os.Executable()
		fmt.Printf("binaries cache %s: %s (kwc %s), cached by run %s at %s\n", cache, strings.Join(m.Tools, ", "), m.Version, m.FilledBy, m.FilledAt)
		if self != "" {
			fmt.Printf("this kwc runs from %s\n", filepath.Clean(self))
		}
		return 0
	default:
		return usage()
	}
}
