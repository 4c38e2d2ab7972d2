// Package storetest is the contract test suite for store.Store: every
// implementation runs Run against a fresh, empty store and must pass all of
// it. It is imported only by tests.
package storetest
