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
	// ErrCrossPartition: a commit names a registry of a user other than the
	// execution's (store.NewExecutionID(env, user)). The records are then
	// not in one partition and could not be written atomically on a Redis
	// Cluster; every backend refuses it, so that a deployment does not break
	// only when it moves to a cluster.
	ErrCrossPartition = errors.New("store: the execution and the registry are in different partitions")
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
	// Version is 1 when the device is first stored and goes up by one
	// with every update (compare-and-set, as for executions).
	Version int64
	Data    []byte
}

// Document is one piece of an environment's configuration saved through the
// management API: a flow definition, a template content, a channel. Kind
// says which; ids are unique per environment and kind.
type Document struct {
	EnvID string
	Kind  Kind
	ID    string
	Data  []byte
}

// Kind is a kind of Document. The set is closed: backends may use it in key
// names.
type Kind string

const (
	KindFlow     Kind = "flows"
	KindTemplate Kind = "templates"
	KindChannel  Kind = "channels"
)

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
	// Commit does UpdateExecution together with writes to the registry of
	// the execution's user, in one atomic step: either all of them happen
	// or none does. Its errors are UpdateExecution's and the writes' own
	// (ErrExists, ErrConflict, ErrNotFound, ErrDeviceLimit), and
	// ErrCrossPartition for a write to another user's registry.
	Commit(ctx context.Context, exec Execution, writes ...Write) error
}

// WriteOp is what one Write of a Commit does.
type WriteOp int

const (
	// CreateDevice adds Write.Device (its Version must be 1): ErrExists if
	// the id is taken, ErrDeviceLimit when the user already has
	// Write.MaxDevices devices (0: no limit).
	CreateDevice WriteOp = iota + 1
	// UpdateDevice replaces Write.Device if the stored one is at
	// Device.Version-1: ErrConflict if not, ErrNotFound if it is gone.
	UpdateDevice
	// DeleteDevice removes the device if it is there.
	DeleteDevice
)

// Write is one registry write of a Commit.
type Write struct {
	Op         WriteOp
	Device     Device // Delete reads EnvID, UserID and ID only
	MaxDevices int    // CreateDevice only
}

// Devices is the device registry other front doors read.
type Devices interface {
	ListDevices(ctx context.Context, envID, userID string) ([]Device, error)
	GetDevice(ctx context.Context, envID, userID, deviceID string) (Device, error)
	// UpdateDevice replaces a device if the stored one is at
	// dev.Version-1 (ErrConflict if not, ErrNotFound if absent).
	UpdateDevice(ctx context.Context, dev Device) error
	DeleteDevice(ctx context.Context, envID, userID, deviceID string) error
	CountDevices(ctx context.Context, envID, userID string) (int, error)
}

// Documents keeps configuration documents per environment and kind.
type Documents interface {
	// ListDocuments returns an environment's documents of one kind, sorted
	// by id.
	ListDocuments(ctx context.Context, envID string, kind Kind) ([]Document, error)
	GetDocument(ctx context.Context, envID string, kind Kind, id string) (Document, error)
	// PutDocument creates or replaces a document. With onlyIfAbsent it
	// never replaces, and reports whether it created.
	PutDocument(ctx context.Context, doc Document, onlyIfAbsent bool) (created bool, err error)
	DeleteDocument(ctx context.Context, envID string, kind Kind, id string) error
}

// Store is everything a node keeps outside itself.
type Store interface {
	Executions
	Devices
	Documents
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
