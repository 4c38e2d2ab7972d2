//go:build !reliability

package reliability

import "time"

// defaultHostileDuration is the flood's length in the everyday test run.
const defaultHostileDuration = 10 * time.Second
