package stamp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// serveAt opens a server and serves it on addr ("127.0.0.1:0" for any
// port), so a restarted server can come back at the same URL.
func serveAt(t testing.TB, cfg Config, addr string) *local {
	t.Helper()
	s, err := Open(cfg)
	must(t, err)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	l := &local{Server: s, srv: &http.Server{Handler: s.Handler()}, url: "http://" + ln.Addr().String()}
	go l.srv.Serve(ln)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRestartKeepsState(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA := Config{Name: "stamp-a", DataDir: dirA}
	cfgB := Config{Name: "stamp-b", DataDir: dirB}
	a := serveAt(t, cfgA, "127.0.0.1:0")
	b := serveAt(t, cfgB, "127.0.0.1:0")
	p := &pair{a: a, b: b, ca: NewClient(a.URL(), nil), cb: NewClient(b.URL(), nil), acct: "acct-1", parts: 4}
	ctx := context.Background()
	must(t, p.cb.CreateAccount(ctx, AccountSpec{Account: p.acct, Partitions: 4, Role: RoleSecondary, Epoch: 1, Peer: a.URL()}))
	must(t, p.ca.CreateAccount(ctx, AccountSpec{Account: p.acct, Partitions: 4, Role: RolePrimary, Epoch: 1, Peer: b.URL()}))
	h, err := p.ca.Health(ctx)
	must(t, err)
	if !h.Durable {
		t.Fatal("a stamp with a DataDir must report durable")
	}

	putN(t, p.ca, p.acct, 100)
	eventually(t, 10*time.Second, "catch-up", func() bool { return p.caughtUp(t) })
	stB := status(t, p.cb, p.acct)
	must(t, b.Close())

	// Writes while the secondary is down, and a fence.
	putN(t, p.ca, p.acct, 60)
	_, err = p.ca.Fence(ctx, p.acct, ControlRequest{Partitions: []int{0}})
	must(t, err)
	stA := status(t, p.ca, p.acct)
	must(t, a.Close())

	a = serveAt(t, cfgA, strings.TrimPrefix(a.URL(), "http://"))
	p.a, p.ca = a, NewClient(a.URL(), nil)
	got := status(t, p.ca, p.acct)
	for i, ps := range got.Partitions {
		was := stA.Partitions[i]
		if ps.LastWritten != was.LastWritten || ps.Fenced != was.Fenced || ps.Epoch != 1 || ps.LastAcked < stB.Partitions[i].LastReceived {
			t.Fatalf("partition %d after restart: %+v, before: %+v", i, ps, was)
		}
	}
	b = serveAt(t, cfgB, strings.TrimPrefix(b.URL(), "http://"))
	p.b, p.cb = b, NewClient(b.URL(), nil)
	for i, ps := range status(t, p.cb, p.acct).Partitions {
		if ps.LastReceived < stB.Partitions[i].LastReceived || ps.LastReplayed < stB.Partitions[i].LastReplayed {
			t.Fatalf("secondary partition %d went back after restart: %+v, before %+v", i, ps, stB.Partitions[i])
		}
	}
	eventually(t, 15*time.Second, "catch-up after both restarts", func() bool { return p.caughtUp(t) })

	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%05d", i)
	}
	ra, err := p.ca.Read(ctx, p.acct, keys)
	must(t, err)
	rb, err := p.cb.Read(ctx, p.acct, keys)
	must(t, err)
	if len(ra.Values) != 100 || fmt.Sprint(ra.Values) != fmt.Sprint(rb.Values) {
		t.Fatalf("primary and secondary disagree after restart:\n%v\n%v", ra.Values, rb.Values)
	}
	w, err := p.ca.Put(ctx, p.acct, "key-00001", "new", 0)
	if w.Partition == 0 {
		wantAPIError(t, err, http.StatusServiceUnavailable, CodeFenced)
	} else {
		must(t, err)
		if w.LSN != stA.Partitions[w.Partition].LastWritten+1 {
			t.Fatalf("write after restart got LSN %d, want %d", w.LSN, stA.Partitions[w.Partition].LastWritten+1)
		}
	}
}

// TestKill9 writes to a stamp in a child process, kills it with SIGKILL
// mid-stream, and checks every acknowledged write survived.
func TestKill9(t *testing.T) {
	if os.Getenv("BATON_STAMP_CHILD_DIR") != "" {
		t.Skip("running as the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$")
	cmd.Env = append(os.Environ(), "BATON_STAMP_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatal("child did not report its URL")
	}
	c := NewClient(url, nil)
	ctx := context.Background()
	must(t, c.CreateAccount(ctx, AccountSpec{Account: "k9", Partitions: 8, Role: RolePrimary, Epoch: 1, Peer: "http://127.0.0.1:1"}))

	// Concurrent writers; each remembers what was acknowledged.
	type ack struct {
		key string
		res WriteResult
	}
	acks := make(chan ack, 100000)
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d-%d", w, i)
				r, err := c.Put(ctx, "k9", key, key, 0)
				if err != nil {
					return // the child died
				}
				acks <- ack{key, r}
			}
		}()
	}
	eventually(t, 10*time.Second, "some acknowledged writes", func() bool { return len(acks) >= 500 })
	must(t, cmd.Process.Kill())
	cmd.Wait()
	close(stop)
	for range 8 {
		<-done
	}
	close(acks)

	s, err := Open(Config{Name: "child", DataDir: dir})
	must(t, err)
	defer s.Close()
	a, err := s.account("k9")
	must(t, err)
	var keys []string
	want := map[string]WriteResult{}
	for a := range acks {
		keys = append(keys, a.key)
		want[a.key] = a.res
	}
	for _, k := range keys {
		w := want[k]
		if got := a.parts[w.Partition].durable.Load(); got < w.LSN {
			t.Fatalf("partition %d recovered LastWritten %d below acknowledged LSN %d", w.Partition, got, w.LSN)
		}
	}
	srv := httptestServe(t, s)
	rr, err := NewClient(srv, nil).Read(ctx, "k9", keys)
	must(t, err)
	if len(rr.Missing) > 0 {
		t.Fatalf("%d acknowledged writes lost after kill -9, e.g. %q", len(rr.Missing), rr.Missing[0])
	}
	for _, k := range keys {
		if v := rr.Values[k]; v.Value != k || v.LSN != want[k].LSN {
			t.Fatalf("key %s = %+v, acknowledged %+v", k, v, want[k])
		}
	}
	t.Logf("%d acknowledged writes all survived kill -9", len(keys))
}

func httptestServe(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestKill9Child is the child process of TestKill9: it serves a durable
// stamp until killed.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("BATON_STAMP_CHILD_DIR")
	if dir == "" {
		t.Skip("only runs as TestKill9's child")
	}
	l := startLocal(t, Config{Name: "child", DataDir: dir})
	fmt.Println("URL " + l.URL())
	select {} // until SIGKILL
}
