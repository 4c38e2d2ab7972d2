// Package central runs the Central service: it opens the store (SQLite in a
// data directory by default, PostgreSQL when given a postgres:// URL),
// bootstraps the admin token and the site enrollment key on first start, and
// serves the JSON API, the web page, metrics and health over HTTP or HTTPS
// until its context is cancelled.
//
// Central never imports agent, packet or election code: agents reach it only
// through HTTP (see central/client).
package central
