package local

// WithPortPicker returns o with pick in place of the free-port pick for children, so a test
// can hand a start a port that another process already holds.
func WithPortPicker(o Options, pick func() (int, error)) Options {
	o.pickPort = pick
	return o
}

// LaunchAttempts bounds the starts of one cold start on picked ports.
const LaunchAttempts = launchAttempts
