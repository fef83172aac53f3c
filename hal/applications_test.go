package hal_test

import (
	"net/http"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
)

// TestApplications: the mobile applications of the management API: the
// configured ones, saved ones over them, validation naming the field, and
// a saved application that the policy allows is offered and pairs.
func TestApplications(t *testing.T) {
	cfg := demoConfig(func(e *config.Environment) {
		e.DeviceAuthenticationPolicies[0].Mobile.Applications = []string{demoApp, "api-app"}
	})
	forEachStore(t, func(t *testing.T, b *backend) {
		n := newNode(t, b, apptest.Options{Config: cfg})
		const apps = "/environments/demo/applications"
		l := n.admin(http.MethodGet, apps, "")
		mustStatus(t, l, http.StatusOK)
		items := list(l.Body, "_embedded", "applications")
		if len(items) != 1 || str(items[0], "id") != demoApp || str(items[0], "source") != "configuration" {
			t.Fatalf("applications: %s", l)
		}
		mustError(t, n.do(http.MethodGet, apps, "", ""), http.StatusUnauthorized, "ACCESS_FAILED")

		for _, tc := range []struct{ body, field string }{
			{`{"name":""}`, "name"},
			{`{"name":"A","pairingKeyLifetime":{"duration":30,"timeUnit":"SECONDS"}}`, "pairingKeyLifetime"},
			{`{"name":"A","pairingKeyLifetime":{"duration":49,"timeUnit":"HOURS"}}`, "pairingKeyLifetime"},
			{`{"name":"A","pushTokenRequired":true}`, "pushTokenRequired"},
			{`{"id":"other","name":"A"}`, "id"},
			{`{"name":"A","colour":"red"}`, "colour"},
		} {
			r := n.admin(http.MethodPut, apps+"/api-app", tc.body)
			mustStatus(t, r, http.StatusBadRequest)
			if got := str(list(r.Body, "details")[0], "target"); got != tc.field {
				t.Errorf("%s: target %q, want %q", tc.body, got, tc.field)
			}
		}
		mustError(t, n.admin(http.MethodGet, apps+"/api-app", ""), http.StatusNotFound, "NOT_FOUND")

		// Not offered until it exists.
		id := n.start("app-user")
		if got := list(n.get(id).Body, "applications"); len(got) != 1 {
			t.Errorf("applications offered before the save: %v", got)
		}
		created := n.admin(http.MethodPut, apps+"/api-app", `{"name":"API app","pairingKeyLifetime":{"duration":2,"timeUnit":"MINUTES"},"push":{"enabled":true}}`)
		mustStatus(t, created, http.StatusCreated)
		if created.Header.Get("Location") != baseURL+apps+"/api-app" || str(created.Body, "source") != "api" {
			t.Errorf("created: %s (Location %s)", created, created.Header.Get("Location"))
		}
		mustStatus(t, n.admin(http.MethodPut, apps+"/api-app", `{"name":"API app, renamed"}`), http.StatusOK)
		if got := n.admin(http.MethodGet, apps+"/api-app", ""); str(got.Body, "name") != "API app, renamed" || num(got.Body, "pairingKeyLifetime", "duration") != 10 {
			t.Errorf("replaced: %s", got)
		}
		if got := list(n.get(id).Body, "applications"); len(got) != 2 {
			t.Errorf("applications offered after the save: %v", got)
		}
		code := pairingCode(t, n.createMobile(id, "api-app"))
		mustStatus(t, n.pair(code, "api-app", newPhone(t)), http.StatusCreated)

		pending := n.start("app-user-3")
		pendingCode := pairingCode(t, n.createMobile(pending, "api-app"))

		// A configured application can be overridden, not deleted.
		mustError(t, n.admin(http.MethodDelete, apps+"/"+demoApp, ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
		mustStatus(t, n.admin(http.MethodDelete, apps+"/api-app", ""), http.StatusNoContent)
		// Its keys pair no more phones.
		mustError(t, n.pair(pendingCode, "api-app", newPhone(t)), http.StatusBadRequest, "APPLICATION_MISMATCH")
		mustError(t, n.admin(http.MethodDelete, apps+"/api-app", ""), http.StatusNotFound, "NOT_FOUND")
		other := n.start("app-user-2")
		mustError(t, n.createMobile(other, "api-app"), http.StatusBadRequest, "INVALID_DATA", detail{"application.id", "INVALID_VALUE"})
	})
}
