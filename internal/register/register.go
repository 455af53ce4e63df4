// Package register makes Baton known to Temporal: its workflows and
// activities on a worker, and its search attributes in a namespace.
package register

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

// WorkflowsAndActivities registers every Baton workflow, under its
// contract name, and the activities on w.
func WorkflowsAndActivities(w worker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.AccountFailover,
		workflow.RegisterOptions{Name: workflows.NameAccountFailover})
	w.RegisterWorkflowWithOptions(workflows.PartitionGroupFailover,
		workflow.RegisterOptions{Name: workflows.NamePartitionGroupFailover})
	w.RegisterWorkflowWithOptions(workflows.AppFailover,
		workflow.RegisterOptions{Name: workflows.NameAppFailover})
	w.RegisterWorkflowWithOptions(workflows.Reprotect,
		workflow.RegisterOptions{Name: workflows.NameReprotect})
	w.RegisterWorkflowWithOptions(workflows.Drill,
		workflow.RegisterOptions{Name: workflows.NameDrill})
	w.RegisterWorkflowWithOptions(workflows.StampEvacuation,
		workflow.RegisterOptions{Name: workflows.NameStampEvacuation})
	w.RegisterActivity(acts)
}

// SearchAttributes registers Baton's search attributes in the namespace if
// they are missing (the dev server registers them at launch; a production
// cluster needs them once).
func SearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	have, err := customAttributes(ctx, c, namespace)
	if err != nil {
		return err
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames() {
		if _, ok := have[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	if err == nil || allRegistered(ctx, c, namespace, missing) {
		// Several workers starting at once race to add them: the loser's
		// error is fine if they are all there now.
		return nil
	}
	return fmt.Errorf("register search attributes %v in namespace %s "+
		"(or ask an admin: temporal operator search-attribute create --name BatonAccount --type Keyword ...): %w",
		workflows.SearchAttributeNames(), namespace, err)
}

// customAttributes lists the namespace's custom search attributes.
func customAttributes(ctx context.Context, c client.Client,
	namespace string) (map[string]enumspb.IndexedValueType, error) {
	list, err := c.OperatorService().ListSearchAttributes(ctx,
		&operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	return list.GetCustomAttributes(), nil
}

// allRegistered reports whether the namespace now has every attribute of
// want (false if it cannot tell).
func allRegistered(ctx context.Context, c client.Client, namespace string,
	want map[string]enumspb.IndexedValueType) bool {
	have, err := customAttributes(ctx, c, namespace)
	if err != nil {
		return false
	}
	for name := range want {
		if _, ok := have[name]; !ok {
			return false
		}
	}
	return true
}
