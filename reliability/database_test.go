package reliability

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/spool"
	"github.com/peerboot/peerboot/central/client"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/pgtest"
)

// pgRestart stops the PostgreSQL server behind a pgtest URL at once
// (immediate shutdown: connections cut, crash recovery on the next start)
// and returns a function that starts it again on the same data directory.
func pgRestart(t *testing.T, pgURL string) (stop func(), start func()) {
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	sock := u.Query().Get("host")
	data := filepath.Join(filepath.Dir(sock), "data")
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	postmasterPID := func() int {
		b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
		return pid
	}
	var restarted *exec.Cmd
	var exited chan struct{}
	stop = func() {
		pid := postmasterPID()
		if pid == 0 {
			t.Fatal("no postmaster.pid")
		}
		syscall.Kill(pid, syscall.SIGQUIT)
		deadline := time.Now().Add(30 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("postgres %d still running 30s after SIGQUIT", pid)
			}
			time.Sleep(20 * time.Millisecond) // polling a PID with a deadline
		}
	}
	start = func() {
		cmd := exec.Command(filepath.Join(pgtest.BinDir, "postgres"), "-D", data, "-k", sock, "-c", "listen_addresses=", "-p", "5432",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=64MB")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = filepath.Dir(sock)
		cmd.Env = []string{"LANG=C", "LC_ALL=C", "PATH=/usr/bin:/bin"}
		logf, err := os.OpenFile(filepath.Join(filepath.Dir(sock), "postgres.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("restart postgres: %v", err)
		}
		restarted, exited = cmd, make(chan struct{})
		go func(done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(exited)
	}
	// Runs before pgtest's own cleanup: stop the server this test started.
	t.Cleanup(func() {
		if restarted == nil {
			return
		}
		restarted.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			restarted.Process.Kill()
			<-exited
		}
	})
	return stop, start
}

// TestEventsSurviveDatabaseRestart: an agent's event path (the on-disk
// spool flushed by the Central client, as the agent runs it) keeps
// appending events while Central's PostgreSQL is shut down immediately
// and started again. Central answers 5xx meanwhile, the spool retries, and
// afterwards Central holds every event exactly once.
func TestEventsSurviveDatabaseRestart(t *testing.T) {
	pg := pgtest.Start(t)
	db := pg.NewDatabase(t)
	pgURL := pg.URL(db)
	// The throw-away server runs with synchronous_commit off (speed), which
	// by design loses the last commits when the server dies; the test is
	// about peerboot, so this database commits as a production one does.
	admin, err := sql.Open("pgx", pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("ALTER DATABASE " + db + " SET synchronous_commit = on"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	stopPG, startPG := pgRestart(t, pgURL)
	c := startCentral(t, t.TempDir(), nil, "--db", pgURL)
	tok, _ := centralFixture(t, c)

	sp, err := spool.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	cl := client.New(c.url, tok, nil)
	var sends, failures atomic.Int64
	send := func(ctx context.Context, evs []model.Event) error {
		sends.Add(1)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := cl.PostEvents(cctx, evs)
		if err != nil {
			failures.Add(1)
		}
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { defer close(runDone); sp.Run(ctx, send, 100*time.Millisecond) }()

	const total = 600
	appendSome := func(from, to int) {
		for i := from; i < to; i++ {
			ev := model.Event{ID: fmt.Sprintf("db-restart-%04d", i), Type: "reliability.db", MAC: "02:00:00:00:00:05", Time: time.Now().UTC()}
			if err := sp.Append(ev); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // pacing the producer, not synchronisation
		}
	}
	appendSome(0, 200)
	stopPG()
	// While the database is down Central refuses (5xx) and the events
	// queue on disk.
	appendSome(200, 400)
	if code, _ := c.do(t, "GET", "/healthz", "", nil); code != 503 {
		t.Errorf("Central /healthz answered %d with its database down, want 503", code)
	}
	startPG()
	appendSome(400, total)
	deadline := time.Now().Add(90 * time.Second)
	for sp.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still queued 90s after the database came back", sp.Pending())
		}
		sp.Kick()
		time.Sleep(50 * time.Millisecond) // polling the queue with a deadline
	}
	cancel()
	<-runDone

	var evs []model.Event
	c.must(t, "GET", "/api/v1/events?type=reliability.db&limit=10000", c.admin, nil, &evs)
	seen := map[string]int{}
	for _, e := range evs {
		seen[e.ID]++
	}
	missing, dup := 0, 0
	for i := 0; i < total; i++ {
		switch seen[fmt.Sprintf("db-restart-%04d", i)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("%d events, %d batches sent, %d failed while the database was down; Central holds %d (missing %d, duplicated %d)",
		total, sends.Load(), failures.Load(), len(evs), missing, dup)
	// The client retries 5xx itself, so a send may span the outage; what
	// shows the outage happened is Central's count of failed event posts.
	_, metrics := c.do(t, "GET", "/metrics", "", nil)
	refused := 0
	for _, line := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(line, "peerboot_central_http_requests_total{") && strings.Contains(line, "/api/v1/events") && strings.Contains(line, `code="5`) {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[len(f)-1])
			refused += n
		}
	}
	t.Logf("Central answered %d event posts with 5xx while its database was down", refused)
	if refused == 0 {
		t.Errorf("Central never failed an event post: the database outage did not happen (metrics: %s)", firstN(string(metrics), 300))
	}
	if missing != 0 || dup != 0 || len(evs) != total {
		t.Fatalf("Central holds %d events for %d sent: %d missing, %d duplicated", len(evs), total, missing, dup)
	}
}
