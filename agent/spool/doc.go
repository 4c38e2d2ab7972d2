// Package spool keeps the events an agent reports (decisions, elections,
// transfer statistics) on disk until Central has them: append-only segment
// files, each append fsync'd before it returns, and a cursor of what Central
// acknowledged, replaced atomically. Every event carries an id chosen when it
// is appended, and Central ignores ids it already has, so a batch resent after
// a crash between "Central stored it" and "cursor saved" is not duplicated:
// each event reaches Central exactly once, and none is lost across restarts.
//
// spool must never import the Central client (it takes a send function) or
// any packet code.
package spool
