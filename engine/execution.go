package engine

import (
	"encoding/json"
	"time"
)

// Execution statuses besides the steps' own flow states.
const (
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// Execution is one run of a flow. It is saved whole on every change, with
// a version for compare-and-set; the JSON names are short because every
// byte is paid for in Redis memory per live execution.
type Execution struct {
	ID        string                `json:"-"`
	EnvID     string                `json:"-"`
	Version   int64                 `json:"-"`
	FlowID    string                `json:"f"`
	UserID    string                `json:"u"`
	StepID    string                `json:"s,omitempty"` // "" once the flow has ended
	StepType  string                `json:"t,omitempty"`
	StepInput map[string]any        `json:"si,omitempty"`
	State     json.RawMessage       `json:"st,omitempty"`
	Status    string                `json:"x,omitempty"` // COMPLETED or FAILED once ended
	Inputs    map[string]any        `json:"in"`
	Results   map[string]StepResult `json:"r,omitempty"` // by step id
	Error     *ErrorDetail          `json:"e,omitempty"` // why it FAILED
	CreatedAt time.Time             `json:"c"`
	ExpiresAt time.Time             `json:"ex"`
	// StepConfig is the running step's configuration, copied at the step's
	// start so that editing the flow does not change running executions.
	StepConfig json.RawMessage   `json:"sc,omitempty"`
	Outlets    map[string]Outlet `json:"o,omitempty"`
}

// StepResult is how a finished step ended.
type StepResult struct {
	Type    string         `json:"type"`
	Result  string         `json:"result"`
	Outputs map[string]any `json:"outputs,omitempty"`
}

// Ended reports whether the flow is over.
func (x *Execution) Ended() bool { return x.StepID == "" }

// LogID is the form of an execution id that may be logged: a prefix that
// correlates log lines but, unlike the whole id, does not let a log reader
// drive the execution.
func LogID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
