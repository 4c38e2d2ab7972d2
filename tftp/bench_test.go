package tftp

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/peerboot/peerboot/tftp/client"
)

// BenchmarkDownloadInProcess serves 100 MiB on loopback and downloads it
// with the client in the same process at 1468 x 64, for CPU profiles of
// both ends (go test -run XXX -bench DownloadInProcess -cpuprofile cpu.out
// ./tftp/). Side-by-side comparisons with other servers live in bench/tftp.
func BenchmarkDownloadInProcess(b *testing.B) {
	root := b.TempDir()
	os.Chmod(root, 0o755)
	f := writeRandomFile(b, root, "bench.bin", 100<<20)
	_, addr, _ := startServer(b, root, nil)
	var resent int64
	for b.Loop() {
		res, err := client.Get(context.Background(), addr, f.name, io.Discard,
			client.Options{Blksize: 1468, Windowsize: benchWindow, Tsize: true, Dally: -1})
		if err != nil {
			b.Fatal(err)
		}
		if res.Bytes != f.size {
			b.Fatalf("%d bytes, want %d", res.Bytes, f.size)
		}
		resent += res.AcksResent
	}
	b.SetBytes(f.size)
	b.ReportMetric(float64(resent)/float64(b.N), "acks-resent/op")
}

// benchWindow is the windowsize BenchmarkDownloadInProcess asks for.
const benchWindow = 64
