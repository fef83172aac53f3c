package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/redis/redistest"
)

// go-redis re-sends a command whose reply was lost. These tests re-run the
// write scripts with the very same arguments, as such a retry would, and
// check that the second run reports the first one's success instead of a
// false ErrExists or ErrConflict, while a different writer is still refused.
func TestWriteRetriesAreIdempotent(t *testing.T) {
	srv := redistest.Start(t)
	s := New(goredis.NewClient(&goredis.Options{Addr: srv.Addr()}), Options{})
	defer s.Close()
	ctx := context.Background()

	exec := store.Execution{
		EnvID: "env1", ID: store.NewExecutionID("env1", "alice"), Version: 1,
		ExpiresAt: time.Now().Add(time.Hour), Data: []byte("v1"),
	}
	key, _ := s.execKey(exec.EnvID, exec.ID)
	run := func(script *goredis.Script, keys []string, args []any) error {
		return scriptStatus(script.Run(ctx, s.client, keys, args...).Result())
	}

	create := s.execArgs(exec)
	for attempt := range 2 {
		if err := run(createScript, []string{key}, create); err != nil {
			t.Fatalf("create attempt %d: %v", attempt, err)
		}
	}
	if err := run(createScript, []string{key}, s.execArgs(exec)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create by another writer: got %v, want ErrExists", err)
	}

	upd := exec
	upd.Version, upd.Data = 2, []byte("v2")
	update := s.execArgs(upd)
	for attempt := range 2 {
		if err := run(updateScript, []string{key}, update); err != nil {
			t.Fatalf("update attempt %d: %v", attempt, err)
		}
	}
	if err := run(updateScript, []string{key}, s.execArgs(upd)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same update by another writer: got %v, want ErrConflict", err)
	}

	com := upd
	com.Version, com.Data = 3, []byte("v3")
	dev := store.Device{EnvID: "env1", UserID: "alice", ID: store.NewID(), Version: 1, Data: []byte("d")}
	commit := append(s.execArgs(com), int(store.CreateDevice), dev.ID, dev.Version, dev.Data, 1)
	keys := []string{key, s.registryKey(dev.EnvID, dev.UserID)}
	for attempt := range 2 {
		if err := run(commitScript, keys, commit); err != nil {
			t.Fatalf("commit attempt %d: %v", attempt, err)
		}
	}
	other := store.Device{EnvID: "env1", UserID: "alice", ID: store.NewID(), Version: 1, Data: []byte("other")}
	if err := run(commitScript, keys, append(s.execArgs(com), int(store.CreateDevice), other.ID, other.Version, other.Data, 1)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same commit by another writer: got %v, want ErrConflict", err)
	}

	got, err := s.GetExecution(ctx, exec.EnvID, exec.ID)
	if err != nil || got.Version != 3 || string(got.Data) != "v3" {
		t.Fatalf("GetExecution = %+v, %v; want version 3, data v3", got, err)
	}
	devs, err := s.ListDevices(ctx, "env1", "alice")
	if err != nil || len(devs) != 1 || devs[0].ID != dev.ID {
		t.Fatalf("ListDevices = %v, %v; want only %s", devs, err, dev.ID)
	}
}
