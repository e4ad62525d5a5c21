package stack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// AddDeployment creates, starts and waits for one more deployment on a
// running stack: a test that needs one of its own (its own database and
// task queue; a Temporal namespace of its own through
// DeploymentOptions.Env, "TEMPORAL_NAMESPACE=…", after RegisterNamespace).
// Close stops it with the others. Not to be called concurrently with
// itself, Processes, DumpLogs or Close.
func (s *Stack) AddDeployment(ctx context.Context, o DeploymentOptions) (*Deployment, error) {
	if s.Deployment(o.Name) != nil {
		return nil, fmt.Errorf("stack: two deployments named %q", o.Name)
	}
	d, err := s.newDeployment(ctx, o)
	if err != nil {
		return nil, err
	}
	d.build()
	s.Deployments = append(s.Deployments, d)
	s.logf("starting deployment %q: %d processes", o.Name, len(d.Processes()))
	for _, p := range d.Processes() {
		if err := p.Start(); err != nil {
			return d, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for _, p := range d.Processes() {
		if err := p.WaitReady(wctx); err != nil {
			return d, fmt.Errorf("%w\n%s", err, p.LogTail(4000))
		}
	}
	return d, nil
}

// RegisterNamespace registers a namespace on the stack's Temporal server
// (one that exists already is fine) and waits until a workflow can start
// in it.
func (s *Stack) RegisterNamespace(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	nc, err := client.NewNamespaceClient(client.Options{HostPort: s.TemporalAddress, Logger: QuietLogger{}})
	if err != nil {
		return err
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: name, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register namespace %s: %w", name, err)
	}
	c, err := client.DialContext(ctx, client.Options{HostPort: s.TemporalAddress, Namespace: name, Logger: QuietLogger{}})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		// A start that succeeds means frontend and history both know it.
		id := "stack/probe/" + strconv.FormatInt(time.Now().UnixNano(), 36)
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "payflow-stack-probe"}, "StackProbe")
		if err == nil {
			return c.TerminateWorkflow(ctx, id, run.GetRunID(), "probe")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s not usable: %w", name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
