package functions

// Schedule is a cron tick standing for a catalog event type: a Knative PingSource in the
// cluster (knative/manifests), an EventBridge schedule on Lambda, and a ticker of the local
// platform (knative/local). It fires only when a catalog function subscribes to Type.
type Schedule struct {
	Name     string // PingSource name (DNS label); part of every tick's CloudEvent source
	Cron     string // five-field cron, read in Timezone
	Timezone string // IANA zone
	Type     string // the catalog event type the ticks stand for
	Data     string // JSON body of each tick
}

// Schedules are the platform's cron ticks.
func Schedules() []Schedule {
	return []Schedule{{
		Name: "execution-tick",
		// Every minute, every day: tenants' cron schedules fire outside market hours too;
		// execution-scheduler decides what is due (market_hours schedules only in TSE
		// sessions on business days).
		Cron:     "* * * * *",
		Timezone: "Asia/Tokyo",
		Type:     "com.daytrade.execution.tick",
		Data:     `{"schedule":"execution-tick"}`,
	}}
}
