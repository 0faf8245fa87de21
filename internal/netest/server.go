package netest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// Server is one `evoucher server` process of a network.
type Server struct {
	Name    string // server-1, server-2, … in the order started
	Addr    string // host:port it listens on (loopback)
	URL     string // https://Addr
	LogPath string // its JSON log (stderr)
	Started time.Time

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// listening is the server's log line that gives its address.
var listening = regexp.MustCompile(`"msg":"server listening","addr":"([^"]+)"`)

// addrWatch copies the server's stderr to its log file and reports the address it listens
// on. exec calls Write from one goroutine only.
type addrWatch struct {
	f     *os.File
	buf   []byte
	found chan string
	sent  bool
}

func (w *addrWatch) Write(p []byte) (int, error) {
	if !w.sent {
		w.buf = append(w.buf, p...)
		if m := listening.FindSubmatch(w.buf); m != nil {
			w.found <- string(m[1])
			w.sent, w.buf = true, nil
		}
	}
	return w.f.Write(p)
}

// StartServer starts one more `evoucher server --listen 127.0.0.1:0` on the network's
// database and waits until it listens. The process is killed if this process dies.
func (n *Network) StartServer(ctx context.Context) (*Server, error) {
	n.mu.Lock()
	n.nServers++
	name := fmt.Sprintf("server-%d", n.nServers)
	n.mu.Unlock()
	s := &Server{Name: name, LogPath: filepath.Join(n.work, name+".log"), done: make(chan struct{})}
	f, err := os.Create(s.LogPath)
	if err != nil {
		return nil, err
	}
	w := &addrWatch{f: f, found: make(chan string, 1)}
	s.cmd = exec.Command(n.cfg.Bin, "server", "--dir", n.Center, "--listen", "127.0.0.1:0")
	s.cmd.Env = n.env
	s.cmd.Stdout, s.cmd.Stderr = f, w
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		f.Close()
		close(s.done)
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case s.Addr = <-w.found:
	case <-s.done:
		return nil, fmt.Errorf("netest: %s exited at start (%v): %s", name, s.waitErr, s.logTail())
	case <-timeout.C:
		_ = s.Kill()
		return nil, fmt.Errorf("netest: %s did not listen within 30 s: %s", name, s.logTail())
	case <-ctx.Done():
		_ = s.Kill()
		return nil, ctx.Err()
	}
	s.URL, s.Started = "https://"+s.Addr, time.Now()
	n.mu.Lock()
	n.servers = append(n.servers, s)
	n.mu.Unlock()
	n.cfg.Logf("netest: %s listening on %s (pid %d)", name, s.Addr, s.cmd.Process.Pid)
	return s, nil
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Running reports whether the process has not exited.
func (s *Server) Running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL, a crash as far as the server is concerned, and waits for the process to
// end.
func (s *Server) Kill() error {
	if !s.Running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	<-s.done
	return nil
}

// Stop asks the server to shut down gracefully (SIGTERM) and kills it after grace. It returns
// an error when the server did not stop cleanly on its own.
func (s *Server) Stop(grace time.Duration) error {
	if !s.Running() {
		return nil
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("netest: %s stopped with %v: %s", s.Name, s.waitErr, s.logTail())
		}
		return nil
	case <-t.C:
		_ = s.Kill()
		return fmt.Errorf("netest: %s did not stop within %s of SIGTERM and was killed", s.Name, grace)
	}
}

// logTail returns the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// ServerLogs returns the end of every server's log, for a failing test to show.
func (n *Network) ServerLogs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b bytes.Buffer
	for _, s := range n.servers {
		fmt.Fprintf(&b, "--- %s (%s):\n%s\n", s.Name, s.LogPath, s.logTail())
	}
	return b.String()
}
