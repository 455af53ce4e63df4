package testsuite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"

	"github.com/batonhq/baton/workflows"
)

// HeldActivity is a started activity of a failover's group child and
// the worker process that runs it.
type HeldActivity struct {
	WorkflowID string // the group child
	ActivityID string
	Activity   string // activity type
	Identity   string // the worker's identity, "<pid>@<host>@"
	Worker     int    // its index in Cluster.Workers
}

// MidFlush reports whether failover id is in its flush phase with
// partitions still to replay, and if so a started activity of type
// activity (e.g. FlushReplay) of one of its groups, started within the last
// startedWithin (0 = any), and which of the cluster's workers runs it. It
// reads the progress query and the group children's pending activities.
//
// With a stamp fault that makes each call of that activity take longer
// than startedWithin, the activity found is certainly still running.
func (c *Cluster) MidFlush(ctx context.Context, id, activity string, startedWithin time.Duration) (HeldActivity, bool) {
	v, err := c.Client.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return HeldActivity{}, false
	}
	var p workflows.Progress
	if err := v.Get(&p); err != nil || p.Phase != workflows.PhaseFlush || p.Done[workflows.StepFlushReplay] >= p.Partitions {
		return HeldActivity{}, false
	}
	// Groups flushed inline (the fast path) run their steps in the
	// failover itself; others in a child each.
	wids := []string{id}
	for g := range max(p.Groups, 1) {
		wids = append(wids, fmt.Sprintf("%s/group-%04d", id, g))
	}
	for _, wid := range wids {
		d, err := c.Client.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			continue
		}
		for _, pa := range d.GetPendingActivities() {
			name := pa.GetActivityType().GetName()
			if pa.GetState() != enums.PENDING_ACTIVITY_STATE_STARTED || name != activity {
				continue
			}
			if startedWithin > 0 && time.Since(pa.GetLastStartedTime().AsTime()) >= startedWithin {
				continue
			}
			for i, w := range c.Workers {
				if strings.HasPrefix(pa.GetLastWorkerIdentity(), strconv.Itoa(w.PID())+"@") {
					return HeldActivity{WorkflowID: wid, ActivityID: pa.GetActivityId(), Activity: name,
						Identity: pa.GetLastWorkerIdentity(), Worker: i}, true
				}
			}
		}
	}
	return HeldActivity{}, false
}
