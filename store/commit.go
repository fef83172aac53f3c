package store

import "fmt"

// CheckWrites is what every backend checks of a Commit before touching
// anything: each write names a device of the execution's environment whose
// user shares the execution's partition, with a known op, and a created
// device starts at version 1. Backends call it so that they refuse the same
// commits in the same way.
func CheckWrites(exec Execution, writes []Write) error {
	p, ok := ExecutionPartition(exec.ID)
	if !ok {
		return ErrNotFound
	}
	for i, w := range writes {
		d := w.Device
		if d.EnvID != exec.EnvID || Partition(d.EnvID, d.UserID) != p {
			return fmt.Errorf("%w: write %d is for user %q of environment %q, not the execution's", ErrCrossPartition, i, d.UserID, d.EnvID)
		}
		if d.ID == "" && w.Op != Settle && w.PairingKey == nil {
			return fmt.Errorf("store: write %d: no device id", i)
		}
		switch w.Op {
		case Settle:
			if w.Settle == nil {
				return fmt.Errorf("store: write %d: a Settle without a Settlement", i)
			}
		case CreateDevice:
			if d.Version != 1 {
				return fmt.Errorf("store: write %d: a created device has version 1, not %d", i, d.Version)
			}
		case UpdateDevice:
			if d.Version < 2 {
				return fmt.Errorf("store: write %d: an updated device has version 2 or more, not %d", i, d.Version)
			}
		case DeleteDevice:
		case AddPairingKey, ClaimPairingKey, DropPairingKey:
			if w.PairingKey == nil || w.PairingKey.Hash == "" {
				return fmt.Errorf("store: write %d: a pairing-key write without a key", i)
			}
		default:
			return fmt.Errorf("store: write %d: unknown op %d", i, w.Op)
		}
	}
	return nil
}
