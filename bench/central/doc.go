// Package centralbench measures Central's boot decision path over HTTP with
// keep-alive: decisions per second and p99 latency with 100,000 machines
// and 1,000 deployments, on SQLite and on PostgreSQL. Run with
//
//	go test -run '^$' -bench . -benchtime 20000x ./bench/central/
//
// It holds benchmarks only; nothing imports it.
package centralbench
