// Package app is enrollflow's composition root: it turns a configuration,
// a store, a delivery channel and the master secret into a ready engine.
// `enrollflow serve`, the in-process test harness and the load generator's
// tests all wire a node through it, so they run the same assembly.
package app

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/engine"
	"github.com/enrollflow/enrollflow/mfa"
	"github.com/enrollflow/enrollflow/steps/mfaenroll"
	"github.com/enrollflow/enrollflow/store"
)

// Options are what a node is made of.
type Options struct {
	Config config.File
	Store  store.Store
	Sender delivery.Sender
	Secret []byte           // master secret, 32+ bytes, shared by every node
	Now    func() time.Time // nil: time.Now
	TTL    time.Duration    // execution inactivity expiry; 0: engine.DefaultTTL
	Log    zerolog.Logger
}

// Build validates the configuration and returns the runner with every
// environment and its configured flows.
func Build(o Options) (*engine.Runner, error) {
	envs, flows, err := o.Config.Build()
	if err != nil {
		return nil, err
	}
	keys, err := mfa.DeriveKeys(o.Secret)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	sealer, err := mfa.NewSealer(keys.SealTOTP)
	if err != nil {
		return nil, err
	}
	step := mfaenroll.New(mfaenroll.Deps{
		Devices: o.Store, Sender: o.Sender,
		Hasher: mfa.NewOTPHasher(keys.OTPHash), Sealer: sealer, Log: o.Log,
	})
	runner := engine.NewRunner(o.Store, engine.NewStepRegistry(step), envs, engine.Options{Now: o.Now, TTL: o.TTL})
	for _, env := range envs {
		if err := runner.ConfigureFlows(env, flows[env.ID]); err != nil {
			return nil, fmt.Errorf("environment %s: %w", env.ID, err)
		}
	}
	return runner, nil
}
