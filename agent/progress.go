package agent

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// progressBar draws "[#####.....] 45% 12.3/27.0 MB file" on a terminal, or
// logs each quarter when the output is not one.
type progressBar struct {
	w     io.Writer
	tty   bool
	log   *slog.Logger
	mu    sync.Mutex
	last  int
	drawn bool
}

func (p *progressBar) update(done, total int64, file string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	if !p.tty {
		if q := pct / 25; q != p.last/25 || !p.drawn {
			p.log.Info("syncing images", "percent", pct, "bytes", done, "total", total, "file", file)
		}
		p.last, p.drawn = pct, true
		return
	}
	const width = 30
	n := pct * width / 100
	fmt.Fprintf(p.w, "\rsyncing images [%s%s] %3d%% %.1f/%.1f MB %-24.24s", strings.Repeat("#", n), strings.Repeat(".", width-n),
		pct, float64(done)/1e6, float64(total)/1e6, file)
	p.drawn = true
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
	p.drawn = false
}
