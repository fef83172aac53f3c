// Package store defines where enrollflow keeps its state: flow executions,
// the device registry and flow definitions. Records are opaque bytes plus the
// few fields a backend needs to index, version and expire them, so backends
// never learn a step's internals.
//
// Two backends implement Store: store/memory (the zero-setup default) and
// store/redis. Both must pass the suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no such record, or it has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the record's version is not the one the caller read, so a
	// concurrent writer got there first. The caller's write did not happen.
	ErrConflict = errors.New("store: version conflict")
	// ErrExists: create of a record whose id is already taken.
	ErrExists = errors.New("store: already exists")
	// ErrDeviceLimit: committing the device would exceed the user's limit.
	ErrDeviceLimit = errors.New("store: device limit reached")
	// ErrUnavailable wraps every failure to reach the backend.
	ErrUnavailable = errors.New("store: unavailable")
)

// Execution is one flow execution as the store sees it.
type Execution struct {
	EnvID     string
	ID        string // from NewExecutionID: carries the partition
	Version   int64  // 1 on create, +1 on every update
	ExpiresAt time.Time
	Data      []byte
}

// Device is one entry of a user's device registry.
type Device struct {
	EnvID  string
	UserID string
	ID     string
	Data   []byte
}

// Flow is one stored flow definition.
type Flow struct {
	EnvID string
	ID    string
	Data  []byte
}

// Executions keeps flow executions with versioned compare-and-set.
type Executions interface {
	// CreateExecution stores a new execution; exec.Version must be 1.
	CreateExecution(ctx context.Context, exec Execution) error
	// GetExecution returns the execution, or ErrNotFound when it is unknown
	// or past its ExpiresAt.
	GetExecution(ctx context.Context, envID, id string) (Execution, error)
	// UpdateExecution replaces the execution if its stored version is
	// exec.Version-1, else returns ErrConflict (ErrNotFound if it is gone).
	UpdateExecution(ctx context.Context, exec Execution) error
	// CommitEnrollment does UpdateExecution and adds dev to the registry in
	// one atomic step, refusing with ErrDeviceLimit when the user already
	// has maxDevices devices (0 means no limit). Either both writes happen
	// or neither does.
	CommitEnrollment(ctx context.Context, exec Execution, dev Device, maxDevices int) error
}

// Devices is the device registry other front doors read.
type Devices interface {
	ListDevices(ctx context.Context, envID, userID string) ([]Device, error)
	GetDevice(ctx context.Context, envID, userID, deviceID string) (Device, error)
	// PutDevice replaces an existing device's data (ErrNotFound if absent).
	PutDevice(ctx context.Context, dev Device) error
	DeleteDevice(ctx context.Context, envID, userID, deviceID string) error
	CountDevices(ctx context.Context, envID, userID string) (int, error)
}

// Flows keeps flow definitions per environment.
type Flows interface {
	ListFlows(ctx context.Context, envID string) ([]Flow, error)
	GetFlow(ctx context.Context, envID, flowID string) (Flow, error)
	// PutFlow creates or replaces a flow. With onlyIfAbsent it never
	// replaces, and reports whether it created.
	PutFlow(ctx context.Context, flow Flow, onlyIfAbsent bool) (created bool, err error)
	DeleteFlow(ctx context.Context, envID, flowID string) error
}

// Store is everything a node keeps outside itself.
type Store interface {
	Executions
	Devices
	Flows
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
