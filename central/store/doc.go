// Package store defines the storage interface Central runs on and the errors
// it returns. Implementations live in subpackages (sqlite, postgres, both on
// the shared SQL code in sqlstore); storetest is the contract test suite
// every implementation must pass.
//
// store must never import an implementation, the HTTP layers or a driver.
package store
