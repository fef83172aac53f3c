package hal_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app/apptest"
	"github.com/enrollflow/enrollflow/store/memory"
)

// TestConfiguredFlows: a flow of the configuration is always there; the API
// can override it and deleting the override restores it, but it cannot
// delete the configured flow itself.
func TestConfiguredFlows(t *testing.T) {
	n := newNode(t, nil, apptest.Options{Store: memory.New(nil)})
	path := "/environments/demo/flows/" + demoFlow

	mustError(t, n.admin(http.MethodDelete, path, ""), http.StatusConflict, "ACTION_NOT_ALLOWED")
	mustError(t, n.admin(http.MethodPost, "/environments/demo/flows",
		`{"id":"`+demoFlow+`","trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`),
		http.StatusConflict, "UNIQUENESS_VIOLATION")

	// Override: no skipping.
	override := `{"trigger":{"next":"s"},"stepDefinitions":{"s":{"type":"MFA_DEVICE_ENROLLMENT","configuration":{"useDefaultPolicy":true}}}}`
	mustStatus(t, n.admin(http.MethodPut, path, override), http.StatusCreated)
	mustLinks(t, n.get(n.start("override-user")), "device.create")
	if list := n.admin(http.MethodGet, "/environments/demo/flows", ""); strings.Count(string(list.Raw), `"id":"`+demoFlow+`"`) != 1 {
		t.Fatalf("the flow list should hold the override once: %s", list)
	}

	// Deleting the override brings the configured definition back.
	mustStatus(t, n.admin(http.MethodDelete, path, ""), http.StatusNoContent)
	mustLinks(t, n.get(n.start("restored-user")), "device.create", "device.skipEnrollment")
}
