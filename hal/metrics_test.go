package hal_test

import (
	"bytes"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
)

// scrape reads /metrics and returns every enrollflow counter as
// "name{label="value",...}" → value, and every label value seen.
func (n *node) scrape() (counters map[string]float64, labelValues []string) {
	n.t.Helper()
	r := n.do(http.MethodGet, "/metrics", "", "")
	mustStatus(n.t, r, http.StatusOK)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.Raw))
	if err != nil {
		n.t.Fatalf("/metrics is not the text exposition format: %v", err)
	}
	counters = map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labelValues = append(labelValues, l.GetValue())
			}
			if f.GetType() == dto.MetricType_COUNTER && strings.HasPrefix(name, "enrollflow_") {
				counters[series(name, m)] = m.GetCounter().GetValue()
			}
		}
	}
	return counters, labelValues
}

func series(name string, m *dto.Metric) string {
	var labels []string
	for _, l := range m.GetLabel() {
		labels = append(labels, l.GetName()+"="+`"`+l.GetValue()+`"`)
	}
	sort.Strings(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

// TestMetricsOfAnEnrollment: start, device.create, a wrong passcode and the
// right one move exactly the counters they should, and no label holds an
// id or an address.
func TestMetricsOfAnEnrollment(t *testing.T) {
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{})
		before, _ := n.scrape()

		const user, email = "metrics-user-7", "metrics-user-7@example.com"
		id := n.startFlow(demoFlow, map[string]any{"id": user, "email": email})
		created := n.create(id, "EMAIL")
		mustStatus(t, created, http.StatusOK)
		deviceID := str(created.Body, "device", "id")
		code := n.passcode(email)
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		mustError(t, n.activate(id, wrong), http.StatusBadRequest, "INVALID_DATA", detail{"otp", "INVALID_OTP"})
		mustState(t, n.activate(id, code), "COMPLETED")

		after, labels := n.scrape()
		const (
			start = `route="/{envID}/flowExecutions"`
			act   = `route="/{envID}/flowExecutions/{executionID}"`
		)
		want := map[string]float64{
			`enrollflow_flow_starts_total{outcome="ok"}`:                                           1,
			`enrollflow_flow_actions_total{action="device.create",outcome="ok"}`:                   1,
			`enrollflow_flow_actions_total{action="device.activate",outcome="invalid_otp"}`:        1,
			`enrollflow_flow_actions_total{action="device.activate",outcome="ok"}`:                 1,
			`enrollflow_enrollments_total{result="ENROLLED",type="EMAIL"}`:                         1,
			`enrollflow_passcode_deliveries_total{channel="outbox",method="EMAIL",outcome="sent"}`: 1,
			`enrollflow_http_requests_total{method="POST",` + start + `,status="201"}`:             1,
			`enrollflow_http_requests_total{method="POST",` + act + `,status="200"}`:               2,
			`enrollflow_http_requests_total{method="POST",` + act + `,status="400"}`:               1,
			`enrollflow_http_requests_total{method="GET",route="/metrics",status="200"}`:           1, // the first scrape
			`enrollflow_store_operations_total{operation="create_execution",outcome="ok"}`:         1,
			`enrollflow_store_operations_total{operation="get_execution",outcome="ok"}`:            3,
			`enrollflow_store_operations_total{operation="update_execution",outcome="ok"}`:         2,
			`enrollflow_store_operations_total{operation="commit",outcome="ok"}`:                   1,
			`enrollflow_store_operations_total{operation="count_devices",outcome="ok"}`:            1,
			`enrollflow_store_operations_total{operation="get_document",outcome="not_found"}`:      1, // the demo flow is configured, not saved
			`enrollflow_store_operations_total{operation="list_documents",outcome="ok"}`:           3, // templates and channels, cached after; the mobile applications the start's state offers
			`enrollflow_store_operations_total{operation="attempt",outcome="ok"}`:                  2, // both passcodes, counted before they are judged
			`enrollflow_store_operations_total{operation="spend",outcome="ok"}`:                    1, // the one passcode sent: its three budgets in one script
		}
		for s, v := range after {
			if d := v - before[s]; d != want[s] {
				t.Errorf("%s moved by %v, want %v", s, d, want[s])
			}
		}
		for s, v := range want {
			if _, ok := after[s]; !ok {
				t.Errorf("%s is missing (want +%v)", s, v)
			}
		}

		hexID := regexp.MustCompile(`[0-9a-f]{16}`)
		for _, v := range labels {
			for _, secret := range []string{id, id[:8], deviceID, user, email} {
				if strings.Contains(v, secret) {
					t.Errorf("a label value holds an id or address: %q", v)
				}
			}
			if hexID.MatchString(v) && !strings.HasPrefix(v, "go") {
				t.Errorf("a label value looks like an id: %q", v)
			}
		}
	})
}

// TestMetricsOfPairingsAndLongPolls: pairings are counted by outcome, long
// polls by result, and the waiting gauge goes back to zero.
func TestMetricsOfPairingsAndLongPolls(t *testing.T) {
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{})
	before, _ := n.scrape()
	id := n.start("metered")
	code := pairingCode(t, n.createMobile(id, demoApp))
	mustStatus(t, n.do(http.MethodGet, execPath+"/"+id, "", "", "Prefer", "wait=1"), http.StatusOK) // times out
	mustError(t, n.pair("999999999999", demoApp, newPhone(t)), http.StatusNotFound, "PAIRING_KEY_NOT_FOUND")
	mustStatus(t, n.pair(code, demoApp, newPhone(t)), http.StatusCreated)
	mustError(t, n.pair(code, demoApp, newPhone(t)), http.StatusConflict, "PAIRING_KEY_USED")
	after, _ := n.scrape()
	for s, want := range map[string]float64{
		`enrollflow_mobile_pairings_total{outcome="ok"}`:                    1,
		`enrollflow_mobile_pairings_total{outcome="pairing_key_not_found"}`: 1,
		`enrollflow_mobile_pairings_total{outcome="pairing_key_used"}`:      1,
		`enrollflow_long_polls_total{result="timeout"}`:                     1,
		`enrollflow_enrollments_total{result="ENROLLED",type="MOBILE"}`:     1,
	} {
		if d := after[s] - before[s]; d != want {
			t.Errorf("%s moved by %v, want %v", s, d, want)
		}
	}
	r := n.do(http.MethodGet, "/metrics", "", "")
	if !strings.Contains(string(r.Raw), "\nenrollflow_long_polls_waiting 0\n") {
		t.Errorf("enrollflow_long_polls_waiting is not back to 0")
	}
}

// TestMetricsOfCeremonies: a refused WebAuthn activation is counted by its
// detail code, and the enrollment by its device type.
func TestMetricsOfCeremonies(t *testing.T) {
	n := newNode(t, &backend{t: t, name: "memory"}, apptest.Options{})
	before, _ := n.scrape()
	id := n.start("metered-key")
	opts := creationOptions(t, n.act(id, ctCreate, `{"type":"SECURITY_KEY"}`))
	k := newKey()
	evil := demoRP
	evil.Origin = "http://evil.localhost:8080"
	mustStatus(t, n.activateWith(id, k.attest(t, evil, opts, "packed"), evil.Origin), http.StatusBadRequest)
	mustState(t, n.activateWith(id, k.attest(t, demoRP, opts, "packed"), demoRP.Origin), "COMPLETED")
	after, _ := n.scrape()
	for s, want := range map[string]float64{
		`enrollflow_flow_actions_total{action="device.activate",outcome="origin_mismatch"}`: 1,
		`enrollflow_flow_actions_total{action="device.activate",outcome="ok"}`:              1,
		`enrollflow_enrollments_total{result="ENROLLED",type="SECURITY_KEY"}`:               1,
	} {
		if d := after[s] - before[s]; d != want {
			t.Errorf("%s moved by %v, want %v", s, d, want)
		}
	}
}
