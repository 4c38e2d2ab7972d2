//go:build reliability

package reliability

import "time"

// defaultHostileDuration is the flood's length of the full reliability
// run (go test -tags reliability ./reliability).
const defaultHostileDuration = 60 * time.Second
