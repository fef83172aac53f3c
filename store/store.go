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
	// KindApplication: mobile applications saved through the API.
	KindApplication Kind = "applications"
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
	// Settle clears, in the regulation of Device's user, the subjects in
	// Write.Settle (and the user's own count and lockout when it says so):
	// a right code settles what was counted before it was judged.
	Settle
	// AddPairingKey adds Write.PairingKey to the valid pairing keys of
	// Device's user, forgetting expired ones and voiding, beyond
	// PairingKey.Max, those that expire first (never the one added).
	AddPairingKey
	// ClaimPairingKey takes Write.PairingKey out of the user's valid keys:
	// ErrConflict when it is not among them (voided, expired or claimed
	// since it was read).
	ClaimPairingKey
	// DropPairingKey voids Write.PairingKey if it is still valid.
	DropPairingKey
)

// Write is one registry write of a Commit.
type Write struct {
	Op         WriteOp
	Device     Device      // Delete reads EnvID, UserID and ID only; Settle EnvID and UserID
	MaxDevices int         // CreateDevice only
	Settle     *Settlement // Settle only
	PairingKey *PairingKey // the pairing-key ops only
}

// PairingKey is a mobile pairing key as the user's set of valid keys holds
// it: a keyed hash (the store never holds a key that can be read back).
type PairingKey struct {
	Hash      string
	ExpiresAt time.Time
	Max       int // AddPairingKey: the valid keys a user may hold
}

// Settlement says what a Settle clears.
type Settlement struct {
	User     bool     // the user's attempt count and lockout
	Subjects []string // these subjects' counts and cool-downs
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

// Regulation keeps, per user, the attempts to verify the user's codes and
// the lockouts they lead to, so that a limit holds across executions, nodes
// and front doors. Every attempt is counted before it is judged, in one
// atomic step, so N parallel guesses cost N attempts.
type Regulation interface {
	// Attempt counts one attempt and says whether it may be judged. An
	// attempt past the user's lockout counts towards it even when its
	// subject refuses it; one during the lockout counts for nothing.
	Attempt(ctx context.Context, a Attempt) (AttemptResult, error)
	// ReadRegulation returns the user's record (a zero one when none).
	ReadRegulation(ctx context.Context, envID, userID string) (RegulationRecord, error)
	// Settle clears what s names; Commit can do the same atomically with
	// an enrollment.
	Settle(ctx context.Context, envID, userID string, s Settlement) error
}

// Attempt is one attempt to verify a code of a user.
type Attempt struct {
	EnvID, UserID string
	// UserLimit attempts lock the user for UserLockout (0: no user limit).
	// An attempt that reaches the limit is still judged: if its code is
	// right, the settlement of the enrollment or verification lifts the
	// lock.
	UserLimit   int
	UserLockout time.Duration
	// Subject is what is verified (a device, a passcode), "" for nothing
	// of its own. SubjectLimit attempts at it (0: no limit) make it
	// refused for SubjectCoolDown and then counted afresh, or, with
	// SubjectStaysVoid, refused until it is settled (a passcode that needs
	// a new one).
	Subject          string
	SubjectLimit     int
	SubjectCoolDown  time.Duration
	SubjectStaysVoid bool
	// Forget is how long after its last attempt the record is forgotten
	// (0: DefaultForget); a lockout is always kept until it ends.
	Forget time.Duration
}

// DefaultForget is how long a user's attempts are remembered.
const DefaultForget = 24 * time.Hour

// Refusal says why an attempt may not be judged.
type Refusal int

const (
	Admitted      Refusal = iota
	UserLocked            // the user is locked out until UserLockedUntil
	SubjectLocked         // the subject cools down until SubjectLockedUntil
	SubjectVoid           // the subject reached its limit and stays refused until settled
)

// AttemptResult is the record after the attempt.
type AttemptResult struct {
	Refusal            Refusal
	UserAttempts       int       // counted toward the user's limit, this one included
	UserLockedUntil    time.Time // zero when not locked
	SubjectAttempts    int
	SubjectLockedUntil time.Time
}

// Admitted reports whether the attempt may be judged.
func (r AttemptResult) Admitted() bool { return r.Refusal == Admitted }

// RegulationRecord is a user's regulation as it stands.
type RegulationRecord struct {
	UserAttempts    int
	UserLockedUntil time.Time // zero, or the end of a lockout (possibly past)
	Subjects        map[string]SubjectRecord
}

// SubjectRecord is one subject's count.
type SubjectRecord struct {
	Attempts    int
	LockedUntil time.Time
}

// Budgets are rate limits on sends (GCRA: Limit units per Period, all of
// them available at once), held in the store so that they hold across
// nodes.
type Budgets interface {
	// Spend takes one unit from every budget, or from none. A refused
	// spend takes nothing; where a backend cannot decide all the budgets
	// at once (a Redis Cluster: a slot each), it decides the first alone
	// before it touches any other, and gives back what the others took:
	// put the budget the caller controls (the user's) first, so that a
	// caller whose own budget is spent never takes from anyone else's.
	Spend(ctx context.Context, budgets ...Budget) (Spent, error)
	// Refund gives one unit back to a budget (a spend whose send did not
	// happen after all).
	Refund(ctx context.Context, b Budget) error
}

// Budget is one rate limit. Key names it; it must not hold personal data
// in the clear (hash an address first).
type Budget struct {
	Key    string
	Limit  int
	Period time.Duration
}

// Spent is how a Spend went.
type Spent struct {
	OK         bool
	Refused    int           // the index of the first budget that refused
	RetryAfter time.Duration // when that budget has a unit again
}

// PairingKeys reads the user's valid pairing keys (Commit writes them).
type PairingKeys interface {
	// PairingKeyValid reports whether hash is among the user's valid,
	// unexpired pairing keys.
	PairingKeyValid(ctx context.Context, envID, userID, hash string) (bool, error)
}

// Indexes map a value that cannot carry a user's partition (a pairing key,
// a WebAuthn credential id) to the record it finds. They live outside the
// user's slot, so they are hints: a lookup must check that what it finds
// still holds the value.
type Indexes interface {
	// PutIndex maps key to value in the index name until expiresAt,
	// unless key is mapped already (to a live entry): then it changes
	// nothing and reports false, so that two records can never share a
	// key (the caller makes another key).
	PutIndex(ctx context.Context, envID string, name IndexName, key, value string, expiresAt time.Time) (created bool, err error)
	// GetIndex returns the value, or ErrNotFound.
	GetIndex(ctx context.Context, envID string, name IndexName, key string) (string, error)
	// DeleteIndex removes the entry if it maps key to value (so that it
	// never removes another record's claim); absent is no error.
	DeleteIndex(ctx context.Context, envID string, name IndexName, key, value string) error
}

// IndexName names an index; the set is closed (backends use it in keys).
type IndexName string

// IndexPairingKey maps a pairing key's hash to the execution that holds it;
// IndexCredential a WebAuthn credential id's hash to its user and device.
const (
	IndexPairingKey IndexName = "pk"
	IndexCredential IndexName = "cred"
)

// Changes tells waiters, on every node, that an execution was written.
type Changes interface {
	// WatchExecution returns a channel that receives once the execution is
	// written after the call (by UpdateExecution or Commit, on any node),
	// and a cancel that must be called when the caller stops waiting. A
	// backend that lost its notifications for a while (a reconnect) wakes
	// every waiter, which then reads again: a wake-up may be spurious,
	// but none is lost.
	WatchExecution(envID, id string) (changed <-chan struct{}, cancel func())
}

// Store is everything a node keeps outside itself.
type Store interface {
	Executions
	Devices
	Documents
	Regulation
	Budgets
	PairingKeys
	Indexes
	Changes
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}
