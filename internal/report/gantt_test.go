package report

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/planner/plantest"
)

func TestGantt(t *testing.T) {
	const d = 10 * time.Second
	g, err := planner.Compile(plantest.PatentExample(d, planner.Concurrency{Source: 1, Target: 1}))
	require.NoError(t, err)
	sch, err := g.Simulate()
	require.NoError(t, err)
	var b bytes.Buffer
	gantt(&b, bars(sch.Slots), 50)
	require.Equal(t, `step          start       end  |0s                                             50s|
offline A        0s       10s  |##########                                        |
offline B       10s       20s  |          ##########                              |
offline C       20s       30s  |                    ##########                    |
online B        20s       30s  |                    ==========                    |
online C        30s       40s  |                              ==========          |
online A        40s       50s  |                                        ==========|
                                legend: # offline on the source, = online on the target, ~ restore on the source
`, b.String())
}
