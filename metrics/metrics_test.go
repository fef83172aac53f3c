package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/enrollflow/enrollflow/metrics"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
)

// TestLabelsStayBounded: whatever a client sends, the label values come
// from fixed sets: an invented method folds to "other", an unmatched path
// to "unmatched", an enrollment without a known device type to "none".
func TestLabelsStayBounded(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v", Commit: "c", GoVersion: "go"})
	for i := range 50 {
		m.Request("", fmt.Sprintf("BREW%d", i), http.StatusNotFound, time.Millisecond)
	}
	m.StepEnded("MFA_DEVICE_ENROLLMENT", "SKIPPED", nil)
	m.StepEnded("MFA_DEVICE_ENROLLMENT", "ENROLLED", map[string]any{"device": map[string]any{"id": "d1", "type": "user-chosen<script>"}})
	m.StepEnded("SOME_OTHER_STEP", "DONE", nil)

	if n := testutil.CollectAndCount(m.Registry(), "enrollflow_http_requests_total"); n != 1 {
		t.Errorf("50 invented methods made %d series, want 1", n)
	}
	got := values(t, m, "enrollflow_http_requests_total")
	if got[`method="other",route="unmatched",status="404"`] != 50 {
		t.Errorf("requests: %v", got)
	}
	enrolled := values(t, m, "enrollflow_enrollments_total")
	if enrolled[`result="SKIPPED",type="none"`] != 1 || enrolled[`result="ENROLLED",type="none"`] != 1 || len(enrolled) != 2 {
		t.Errorf("enrollments: %v (other step types are not enrollments)", enrolled)
	}
}

// TestStoreOutcomes: the wrapper passes every call through and counts it
// by the store error's class.
func TestStoreOutcomes(t *testing.T) {
	m := metrics.New(metrics.Build{})
	st := m.Store(memory.New(nil))
	ctx := context.Background()
	if _, err := st.GetExecution(ctx, "env", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetExecution of nothing: %v", err)
	}
	x := store.Execution{EnvID: "env", ID: store.NewExecutionID("env", "u"), Version: 1, ExpiresAt: time.Now().Add(time.Minute), Data: []byte(`{}`)}
	if err := st.CreateExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateExecution(ctx, x); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	x.Version = 5
	if err := st.UpdateExecution(ctx, x); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	got := values(t, m, "enrollflow_store_operations_total")
	for series, want := range map[string]float64{
		`operation="get_execution",outcome="not_found"`:   1,
		`operation="create_execution",outcome="ok"`:       1,
		`operation="create_execution",outcome="exists"`:   1,
		`operation="update_execution",outcome="conflict"`: 1,
		`operation="update_execution",outcome="ok"`:       0,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	if n := testutil.CollectAndCount(m.Registry(), "enrollflow_store_operation_duration_seconds"); n == 0 {
		t.Error("no store latency series")
	}
}

// values gathers one metric family as `a="x",b="y"` (labels sorted) → value.
func values(t *testing.T, m *metrics.Metrics, name string) map[string]float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			out[strings.Join(labels, ",")] = value(s)
		}
	}
	return out
}

func value(s *dto.Metric) float64 {
	if c := s.GetCounter(); c != nil {
		return c.GetValue()
	}
	return float64(s.GetHistogram().GetSampleCount())
}
