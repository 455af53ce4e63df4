package workflows

// Metrics Baton's workflows emit through the SDK's metrics handler
// (replay-safe: nothing is emitted while a history is replayed). The worker
// exports them to Prometheus with the SDK's own metrics; see docs/METRICS.md.
const (
	MetricFailovers          = "baton_failovers"           // counter; tags mode, outcome
	MetricFailoverDuration   = "baton_failover_duration"   // timer; tag mode (completed failovers)
	MetricPartitionsFlushed  = "baton_partitions_flushed"  // counter: partitions flush-sent after fence
	MetricPartitionsReplayed = "baton_partitions_replayed" // counter: partitions flush-replayed
	MetricOpsLost            = "baton_ops_lost"            // counter: ops in unplanned data-loss ledgers
	MetricApprovalsWaited    = "baton_approvals_waited"    // counter: failovers that waited at the approval gate

	// The Drill workflow's, tagged with the account.
	MetricDrills        = "baton_drills"                       // counter; tags account, outcome (completed, skipped, failed)
	MetricDrillLastTime = "baton_drill_last_timestamp_seconds" // gauge: unix time a drill last ended; tags account, outcome
	MetricDrillRTO      = "baton_drill_rto"                    // timer; tags account, leg (failover, failback): completed drills
)
