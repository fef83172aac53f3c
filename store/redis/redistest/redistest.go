// Package redistest runs a real, throw-away redis-server for tests.
//
// Every Server listens on its own free port on 127.0.0.1, never on 6379, so
// tests neither see nor disturb a Redis that happens to run on the machine.
// When redis-server is not installed the test is skipped with a loud message,
// or fails when REQUIRE_REDIS=1 (set that in CI so the Redis backend can
// never be skipped silently).
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const readyTimeout = 5 * time.Second

// go-redis logs every failed dial on its own, process-wide logger. Tests
// stop their servers on purpose and assert on the errors the store returns,
// so those lines are only noise that buries real failures in the output.
var silenceClientLogs sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string // more redis-server arguments (a cluster node's)

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start launches redis-server on a free port and waits until it answers
// PING. The server is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t)
}

func start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "SKIPPING: redis-server not installed; set REQUIRE_REDIS=1 to make this a failure"
		if os.Getenv("REQUIRE_REDIS") == "1" {
			t.Fatalf("REQUIRE_REDIS=1 but redis-server is not installed: %v", err)
		}
		t.Skip("!!!!!!!! " + msg + " !!!!!!!!")
	}
	silenceClientLogs.Do(func() { goredis.SetLogger(discardLogger{}) })
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: args}
	t.Cleanup(s.Stop)

	// The free port is found by binding :0 and closing it again, so another
	// process may grab it before redis-server does; retry on a new port.
	var lastErr error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: starting redis-server: %v", lastErr)
	return nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is a redis:// URL for database 0 of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop kills the server (SIGKILL, like a crash) and waits until it is gone.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Process.Kill()
	<-s.done
	s.proc = nil
}

// Restart starts the server again on the same port (after Stop, or killing a
// running one first) and waits until it answers PING. The data is gone:
// persistence is off.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The kernel may hold the port briefly after the kill; keep trying.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: restarting redis-server on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FlushAll empties every database of the server.
func (s *Server) FlushAll() {
	s.t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := c.FlushAll(ctx).Err(); err != nil {
		s.t.Fatalf("redistest: FLUSHALL: %v", err)
	}
}

// launch starts redis-server on s.port and waits for PING; on failure the
// process is gone again.
func (s *Server) launch() error {
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
	)
	cmd.Args = append(cmd.Args, s.args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	err := waitReady(s.Addr(), done)
	if err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w; log tail:\n%s", err, tail(logPath, 10))
	}
	s.mu.Lock()
	s.proc, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// waitReady polls PING until the server answers +PONG, the process exits, or
// readyTimeout passes. A raw RESP exchange keeps this free of client retry
// and pooling logic.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited during start-up", addr)
		default:
		}
		if ping(addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within %v", addr, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		// -LOADING and the like: up, but not ready yet.
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Cluster is a throw-away Redis Cluster of masters without replicas, each
// a Server of its own, with the 16384 slots split between them.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n cluster nodes, gives each a range of slots, joins
// them and waits until every node says cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := make([]*goredis.Client, n)
	for i, node := range c.Nodes {
		clients[i] = goredis.NewClient(&goredis.Options{Addr: node.Addr(), MaxRetries: -1})
		defer clients[i].Close()
		from, to := i*16384/n, (i+1)*16384/n-1
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", node.Addr(), err)
		}
	}
	for _, node := range c.Nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(node.port)).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s: %v", node.Addr(), err)
		}
	}
	for _, cl := range clients {
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: the cluster did not become ready: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// URL is the comma-separated list of node URLs that store/redis reads as
// a cluster.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = "redis://" + n.Addr()
	}
	return strings.Join(urls, ",")
}

// FlushAll empties every node.
func (c *Cluster) FlushAll() {
	for _, n := range c.Nodes {
		n.FlushAll()
	}
}
